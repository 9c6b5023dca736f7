"""Creates the project's periodic tasks once, leaving operators' admin edits alone afterwards."""

from __future__ import annotations

from typing import Any


def ensure_interval_task(name: str, task: str, every_seconds: int, *, kwargs: str = "{}", enabled: bool = True) -> None:
    """Create the PeriodicTask `name` running `task` every N seconds, unless it already exists.

    Existing rows are never touched, so a schedule an operator changed in the admin survives migrations and
    restarts (unlike recreating all periodic tasks at start-up).
    """
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    if PeriodicTask.objects.filter(name=name).exists():
        return
    interval, _ = IntervalSchedule.objects.get_or_create(every=every_seconds, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name=name, task=task, interval=interval, kwargs=kwargs, enabled=enabled)


def post_migrate_schedules(specs: list[tuple[str, str, int]]):  # type: ignore[no-untyped-def]
    """A post_migrate receiver that ensures each `(name, task, every_seconds)` exists."""

    def receiver(sender: Any = None, **kwargs: Any) -> None:
        for name, task, every in specs:
            ensure_interval_task(name, task, every)

    return receiver
