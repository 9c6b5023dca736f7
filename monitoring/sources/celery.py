"""Celery: queue length per queue (from the broker) and the probe dispatch lag (from the registry's rows)."""

from __future__ import annotations

from datetime import UTC, datetime

from django.conf import settings
from django.db.models import Min, Q

from monitoring.points import Agg
from monitoring.sources.base import Points, Sampler


def queue_lengths() -> dict[str, int]:
    """Messages waiting per project queue, asked of the broker (passive declare: creates nothing)."""
    from controlplane.celery import app

    lengths = {}
    with app.connection_for_read() as connection:
        channel = connection.default_channel
        for queue in settings.TASK_QUEUE_TASKS:
            try:
                lengths[queue] = int(channel.queue_declare(queue=queue, passive=True).message_count)
            except Exception:  # noqa: BLE001 - a queue never declared yet holds nothing
                lengths[queue] = 0
    return lengths


def dispatch_lag_ms(now: datetime) -> float:
    """How late the most overdue unclaimed due check is (0 when none is overdue)."""
    from registry.models import Check

    oldest = (
        Check.objects.filter(enabled=True, next_run_at__lte=now)
        .exclude(kind="ttl")
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .aggregate(oldest=Min("next_run_at"))["oldest"]
    )
    return max(0.0, (now - oldest).total_seconds() * 1000) if oldest else 0.0


def _gauge(value: float) -> Agg:
    return Agg(count=1, total=value, min=value, max=value)


class CelerySampler(Sampler):
    """`celery:<queue>:queue_length` and `celery:probes:dispatch_lag` gauges (one sample per beat tick)."""

    name = "celery"

    def sample(self, *, now: datetime) -> Points:
        bucket = now.astimezone(UTC).replace(second=0, microsecond=0)
        points: Points = {(("celery", "probes", "dispatch_lag"), bucket): _gauge(dispatch_lag_ms(now))}
        for queue, length in queue_lengths().items():
            points[(("celery", queue, "queue_length"), bucket)] = _gauge(float(length))
        return points
