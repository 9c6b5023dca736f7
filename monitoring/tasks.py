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


@shared_task(name="monitoring.tasks.alerts_evaluate", ignore_result=True)
def alerts_evaluate() -> dict[str, int]:
    """Every 5 s: evaluate every enabled alert rule (one worker per rule), then flush every enabled channel's due groups (one flusher per channel)."""
    from monitoring.services.alerts import alert_rules_run

    return alert_rules_run()


@shared_task(name="monitoring.tasks.alerts_evaluate_status", bind=True, ignore_result=True, max_retries=5)
def alerts_evaluate_status(self) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """After a stored status transition: evaluate the rules watching `status` at once (event-driven).

    A rule another worker is evaluating may have read the statuses before this change: try again shortly.
    """
    from monitoring.services.alerts import alert_rules_run

    counts = alert_rules_run(metrics=("status", "source_failing"))
    if counts["skipped"] and self.request.retries < self.max_retries:
        raise self.retry(countdown=1)
    return counts  # still held after the retries: the periodic evaluation (every 5 s) covers it


@shared_task(name="monitoring.tasks.alerts_prune", ignore_result=True)
def alerts_prune() -> int:
    """Hourly: delete alert transitions and settled notifications past their retention."""
    from monitoring.services.alerts import alert_history_prune

    return alert_history_prune()
