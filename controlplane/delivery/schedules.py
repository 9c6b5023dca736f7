"""The engine's one periodic sweep, and the removal of the two per-engine sweeps it replaces."""

from __future__ import annotations

from typing import Any

from controlplane.schedules import ensure_interval_task

SWEEP_TASK = "controlplane.delivery.deliveries_sweep"
# The tasks of the two engines this one replaced (issue #10): their beat rows would name tasks that no
# longer exist, and beat would log an error for each every five seconds.
RETIRED_TASKS = ("controlplane.events.tasks.webhook_deliveries_sweep", "pipelines.deliveries_sweep")


def sweep_schedule(sender: Any = None, **kwargs: Any) -> None:
    """post_migrate: ensure the sweep runs every 5 s and drop the retired sweeps' schedules."""
    from django_celery_beat.models import PeriodicTask

    PeriodicTask.objects.filter(task__in=RETIRED_TASKS).delete()
    ensure_interval_task("deliveries: send due deliveries", SWEEP_TASK, 5)
