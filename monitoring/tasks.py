"""Celery tasks of the monitoring app: thin adapters over the services (housekeeping queue)."""

from __future__ import annotations

from celery import shared_task

from monitoring.services import rollups


@shared_task(name="monitoring.tasks.rollup", ignore_result=True)
def rollup() -> dict[str, int]:
    """Every 10 s: registry maintenance flags -> windows, samples, then minute/hour/day roll-ups."""
    return rollups.rollups_run()


@shared_task(name="monitoring.tasks.prune_points", ignore_result=True)
def prune_points() -> int:
    """Hourly: apply the retention of minute, hour and day points."""
    return rollups.points_prune()
