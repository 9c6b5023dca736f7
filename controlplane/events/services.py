"""Writes for events and webhooks: `emit`, fan-out and subscription CRUD (attempts: `controlplane.delivery`)."""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from controlplane.egress import EgressDenied, Purpose, check_url
from controlplane.events.models import Event, WebhookDelivery, WebhookSubscription
from controlplane.observability.context import current_request_id

logger = logging.getLogger("controlplane.events")


def emit(kind: str, *, subject: str = "", data: dict[str, Any] | None = None, actor: str = "system") -> Event:
    """Append an event in the caller's transaction; webhooks fan out only once it commits.

    Call it from the service that made the change, inside its `transaction.atomic` block, so the event
    exists exactly when the change does.
    """
    event = Event.objects.create(
        kind=kind, subject=subject[:255], data=data or {}, actor=actor[:150], request_id=current_request_id() or ""
    )
    transaction.on_commit(lambda: _fan_out_later(event.pk))
    return event


def _fan_out_later(event_id: int) -> None:
    """After commit: create the deliveries in the database first, then queue them.

    The rows are the source of truth; if the broker is down the queueing fails but the delivery sweep
    (beat, every few seconds) finds the pending rows, so no event is lost.
    """
    from controlplane.delivery.services import deliveries_enqueue

    with transaction.atomic():
        ids = event_fan_out(event_id=event_id)
        deliveries_enqueue(kind=WebhookDelivery.delivery_kind, ids=ids)


def event_fan_out(*, event_id: int) -> list[int]:
    """Create a pending delivery per matching active subscription and return their ids."""
    event = Event.objects.filter(pk=event_id).first()
    if event is None:
        return []
    ids = []
    for subscription in WebhookSubscription.objects.filter(active=True):
        if subscription.matches(event.kind):
            delivery, _ = WebhookDelivery.objects.get_or_create(
                subscription=subscription, event=event, defaults={"next_attempt_at": timezone.now()}
            )
            ids.append(delivery.pk)
    return ids


def _validate_subscription(url: str, kinds: Any) -> None:
    errors: dict[str, list[str]] = {}
    try:
        check_url(url, purpose=Purpose.WEBHOOK)
    except EgressDenied as exc:
        errors["url"] = [str(exc)]
    if not isinstance(kinds, list) or not kinds or not all(isinstance(k, str) and k.strip() for k in kinds):
        errors["kinds"] = ["Give a non-empty list of kind patterns such as check.* or config.changed."]
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def webhook_subscription_create(
    *, name: str, url: str, kinds: list[str], secret: str = "", active: bool = True, actor: str = "system"
) -> tuple[WebhookSubscription, str]:
    """Create a subscription; returns it with its secret (generated when not given, shown once)."""
    _validate_subscription(url, kinds)
    secret = secret or secrets.token_urlsafe(32)
    subscription = WebhookSubscription(name=name, url=url, kinds=kinds, secret=secret, active=active)
    subscription.full_clean()
    subscription.save()
    emit("webhook.created", subject=name, data={"url": url, "kinds": kinds}, actor=actor)
    return subscription, secret


@transaction.atomic
def webhook_subscription_update(
    subscription: WebhookSubscription, *, actor: str = "system", **fields: Any
) -> WebhookSubscription:
    """Update url, kinds, secret, active or name after the same checks as creation."""
    for name, value in fields.items():
        setattr(subscription, name, value)
    _validate_subscription(subscription.url, subscription.kinds)
    subscription.full_clean()
    subscription.save()
    emit("webhook.updated", subject=subscription.name, data={"fields": sorted(fields)}, actor=actor)
    return subscription


@transaction.atomic
def webhook_subscription_delete(subscription: WebhookSubscription, *, actor: str = "system") -> None:
    """Delete a subscription and its delivery log."""
    name = subscription.name
    subscription.delete()
    emit("webhook.deleted", subject=name, actor=actor)


def webhook_delivery_attempt(*, delivery_id: int) -> str | None:
    """Send one webhook delivery now through the delivery engine; returns its status, or None when not ours."""
    from controlplane.delivery.services import delivery_attempt

    outcome = delivery_attempt(kind=WebhookDelivery.delivery_kind, delivery_id=delivery_id)
    return outcome.status if outcome is not None else None


def events_prune(*, older_than_days: int | None = None) -> int:
    """Delete events older than the retention period (with their deliveries); returns how many."""
    days = older_than_days or settings.EVENT_RETENTION_DAYS
    deleted, _ = Event.objects.filter(created_at__lt=timezone.now() - timedelta(days=days)).delete()
    return deleted
