"""Reads for events, subscriptions and deliveries."""

from __future__ import annotations

from django.db.models import QuerySet

from controlplane.events.models import Event, WebhookDelivery, WebhookSubscription


def event_list(*, kind: str | None = None, subject: str | None = None, since_id: int | None = None) -> QuerySet[Event]:
    """Events newest first; `kind` accepts a trailing `*` (`check.*`), `since_id` returns only newer ones."""
    qs = Event.objects.all()
    if kind:
        qs = qs.filter(kind__startswith=kind[:-1]) if kind.endswith("*") else qs.filter(kind=kind)
    if subject:
        qs = qs.filter(subject=subject)
    if since_id is not None:
        qs = qs.filter(pk__gt=since_id)
    return qs.order_by("-id")


def webhook_subscription_list() -> QuerySet[WebhookSubscription]:
    return WebhookSubscription.objects.order_by("name")


def webhook_delivery_list(subscription: WebhookSubscription) -> QuerySet[WebhookDelivery]:
    return subscription.deliveries.select_related("event").order_by("-id")


def webhook_deliveries_due(limit: int = 500) -> list[int]:
    """Ids of pending webhook deliveries whose retry time has come and that no live worker holds."""
    from controlplane.delivery.selectors import deliveries_due

    return deliveries_due(kind=WebhookDelivery.delivery_kind, limit=limit)
