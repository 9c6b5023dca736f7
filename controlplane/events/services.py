"""Writes for events and webhooks: `emit`, subscription CRUD, and delivery attempts."""

from __future__ import annotations

import json
import logging
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from controlplane.egress import EgressDenied, Purpose, check_url, guarded_request
from controlplane.events.models import DeliveryStatus, Event, WebhookDelivery, WebhookSubscription
from controlplane.events.signing import SIGNATURE_HEADER, sign
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
    ids = event_fan_out(event_id=event_id)
    if not ids:
        return
    from controlplane.events.tasks import webhook_deliver

    for delivery_id in ids:
        try:
            webhook_deliver.delay(delivery_id)
        except Exception:  # noqa: BLE001 - see docstring
            logger.warning("Could not queue webhook delivery %s; the sweep will retry it", delivery_id)


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


def _claim(delivery_id: int) -> bool:
    """Take the delivery for this worker with a conditional UPDATE, so two workers never both send it."""
    now = timezone.now()
    return bool(
        WebhookDelivery.objects.filter(pk=delivery_id, status=DeliveryStatus.PENDING)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .update(claimed_until=now + timedelta(seconds=settings.WEBHOOK_CLAIM_SECONDS))
    )


def backoff_seconds(attempts: int) -> int:
    """Exponential backoff after `attempts` failures: base, 2x, 4x ... capped at one hour."""
    return min(settings.WEBHOOK_BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0), 3600)


def webhook_delivery_attempt(*, delivery_id: int) -> str | None:
    """Send one delivery now if it is pending and unclaimed; record the outcome and the next retry.

    Returns the resulting status, or None when another worker holds it or it is already settled.
    """
    if not _claim(delivery_id):
        return None
    delivery = WebhookDelivery.objects.select_related("subscription", "event").get(pk=delivery_id)
    event, subscription = delivery.event, delivery.subscription
    body = json.dumps(
        {
            "id": event.pk,
            "kind": event.kind,
            "subject": event.subject,
            "actor": event.actor,
            "data": event.data,
            "created_at": event.created_at.isoformat(),
            "request_id": event.request_id,
        },
        separators=(",", ":"),
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "controlplane-webhooks/1",
        "X-Controlplane-Event": event.kind,
        "X-Controlplane-Delivery": str(delivery.pk),
        SIGNATURE_HEADER: sign(subscription.secret, body),
    }
    error, status_code = "", None
    try:
        response = guarded_request(
            "POST",
            subscription.url,
            purpose=Purpose.WEBHOOK,
            body=body,
            headers=headers,
            timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
            max_bytes=4096,
        )
        status_code = response.status
        if not 200 <= response.status < 300:
            error = f"HTTP {response.status}"
    except EgressDenied as exc:
        error = f"egress denied: {exc}"
    except Exception as exc:  # noqa: BLE001 - any network failure is a failed attempt, recorded below
        error = f"{type(exc).__name__}: {exc}"[:1000]

    now = timezone.now()
    delivery.attempts += 1
    delivery.last_status_code = status_code
    delivery.last_error = error
    delivery.claimed_until = None
    if not error:
        delivery.status = DeliveryStatus.DELIVERED
        delivery.delivered_at = now
        delivery.next_attempt_at = None
    elif delivery.attempts >= settings.WEBHOOK_MAX_ATTEMPTS or error.startswith("egress denied"):
        delivery.status = DeliveryStatus.FAILED
        delivery.next_attempt_at = None
        logger.warning("Webhook delivery %s failed for good: %s", delivery.pk, error)
    else:
        delivery.next_attempt_at = now + timedelta(seconds=backoff_seconds(delivery.attempts))
    delivery.save()
    logger.info(
        "webhook delivery %s to %s: %s (attempt %s)",
        delivery.pk,
        subscription.name,
        error or "delivered",
        delivery.attempts,
        extra={"event_kind": event.kind, "delivery_status": delivery.status},
    )
    return delivery.status


def webhook_deliveries_due(limit: int = 500) -> list[int]:
    """Ids of pending deliveries whose retry time has come and that no live worker holds."""
    now = timezone.now()
    return list(
        WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )


def events_prune(*, older_than_days: int | None = None) -> int:
    """Delete events older than the retention period (with their deliveries); returns how many."""
    days = older_than_days or settings.EVENT_RETENTION_DAYS
    deleted, _ = Event.objects.filter(created_at__lt=timezone.now() - timedelta(days=days)).delete()
    return deleted
