"""Celery tasks for events: thin adapters over `controlplane.events.services`."""

from __future__ import annotations

from celery import shared_task

from controlplane.events import services


@shared_task(name="controlplane.events.tasks.webhook_deliver")
def webhook_deliver(delivery_id: int) -> str | None:
    """Attempt one webhook delivery (retries are scheduled by the sweep, so a lost task loses nothing)."""
    return services.webhook_delivery_attempt(delivery_id=delivery_id)


@shared_task(name="controlplane.events.tasks.webhook_deliveries_sweep")
def webhook_deliveries_sweep() -> int:
    """Queue every due delivery: retries after backoff and any whose worker died mid-attempt."""
    ids = services.webhook_deliveries_due()
    for delivery_id in ids:
        webhook_deliver.delay(delivery_id)
    return len(ids)


@shared_task(name="controlplane.events.tasks.events_prune")
def events_prune() -> int:
    """Apply event retention."""
    return services.events_prune()
