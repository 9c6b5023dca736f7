"""Beat enforces what the issue asks of it once `migrate` has run: roll-ups every 10 s, the retention of
every level (raw results, minute/hour/day points) and of alert history hourly, threshold rules evaluated at
least every 10 s; all on the housekeeping queue (its time limits)."""

from __future__ import annotations

import pytest
from django.conf import settings

pytestmark = pytest.mark.django_db

EXPECTED = {
    # task: (at most this many seconds apart)
    "monitoring.tasks.rollup": 10,
    "monitoring.tasks.prune_points": 3600,  # minute 48 h, hour 90 d, day 2 y
    "registry.tasks.prune_check_results": 3600,  # the raw level: check results are the registry's
    "monitoring.tasks.alerts_evaluate": 10,
    "monitoring.tasks.alerts_prune": 3600,
}


def test_migrate_schedules_roll_ups_retention_and_alert_evaluation() -> None:
    from django_celery_beat.models import PeriodicTask

    rows = {row.task: row for row in PeriodicTask.objects.filter(task__in=EXPECTED).select_related("interval")}
    assert set(rows) == set(EXPECTED)
    for task, at_most in EXPECTED.items():
        row = rows[task]
        assert row.enabled and row.interval is not None, task
        assert row.interval.period == "seconds" and row.interval.every <= at_most, (task, row.interval.every)
        assert task in settings.TASK_QUEUE_TASKS["housekeeping"], task
    names = list(PeriodicTask.objects.filter(task__startswith="monitoring.").values_list("task", flat=True))
    assert len(names) == len(set(names)), "each schedule once, however often migrate runs"
