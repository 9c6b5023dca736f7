"""The engine's Celery tasks: thin adapters over `controlplane.delivery.services`."""

from __future__ import annotations

from celery import shared_task

from controlplane.delivery import services


@shared_task(name="controlplane.delivery.deliver")
def deliver(kind: str, delivery_id: int) -> str | None:
    """Attempt one delivery of `kind` (retries are scheduled in the row and sent by the sweep)."""
    outcome = services.delivery_attempt(kind=kind, delivery_id=delivery_id)
    return outcome.status if outcome is not None else None


@shared_task(name="controlplane.delivery.deliveries_sweep")
def deliveries_sweep() -> dict[str, int]:
    """Queue every due delivery of every kind: retries after backoff, lost messages, crashed workers."""
    return services.deliveries_queue_due()
