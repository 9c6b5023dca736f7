"""Celery tasks for events: thin adapters over `controlplane.events.services`.

Webhook deliveries are sent by the delivery engine's tasks (`controlplane.delivery.tasks`).
"""

from __future__ import annotations

from celery import shared_task

from controlplane.events import services


@shared_task(name="controlplane.events.tasks.events_prune")
def events_prune() -> int:
    """Apply event retention."""
    return services.events_prune()
