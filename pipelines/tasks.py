"""Celery tasks: thin adapters that fetch by id and call a service, tolerating missing rows.

Deliveries are sent by the delivery engine's tasks (`controlplane.delivery.tasks`).
"""

from __future__ import annotations

from celery import shared_task

from pipelines.stats import stats_flush_quietly


@shared_task(name="pipelines.run_execute")
def run_execute_task(run_ids: list[int]) -> dict[str, int]:
    """Execute queued async runs (pinned to their submitted version); returns counts by status."""
    from pipelines.services import run_execute

    counts: dict[str, int] = {}
    try:
        for run_id in run_ids:
            status = run_execute(run_id=run_id)
            if status is not None:
                counts[status] = counts.get(status, 0) + 1
    finally:
        stats_flush_quietly(force=True)
    return counts


@shared_task(name="pipelines.runs_recover")
def runs_recover_task() -> dict[str, int]:
    """Queue again async runs lost with a worker or a queue message (beat, every 30 s)."""
    from pipelines.services import runs_recover

    return runs_recover()


@shared_task(name="pipelines.runs_prune")
def runs_prune_task() -> int:
    """Delete runs and settled deliveries past retention."""
    from pipelines.services import runs_prune

    return runs_prune()


@shared_task(name="pipelines.stats_flush")
def stats_flush_task() -> None:
    """Fold this worker's in-memory step counters into the database."""
    stats_flush_quietly(force=True)
