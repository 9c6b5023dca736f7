"""Per-route request metrics: the tallies each process drains, added to minute points in one bulk write."""

from __future__ import annotations

from datetime import datetime, timedelta

from controlplane.observability.requestmetrics import RouteTally, TallyKey
from monitoring.models import Resolution
from monitoring.points import EPOCH, Agg
from monitoring.services.metrics import points_add, watermark_get


def request_metrics_flush(tallies: dict[TallyKey, RouteTally]) -> int:
    """Add drained tallies to the `route:<METHOD> <route>:requests` minute points; returns points touched.

    count = requests, total = latency sum (ms), min/max/histogram of latency, breakdown {"4xx", "5xx"}.
    A tally for a minute the roll-up has already passed (a process that sat idle) goes into the first
    minute not yet rolled up: it arrives late, but it is counted, and counted once.
    """
    watermark = watermark_get(name="minute")
    points: dict = {}
    for (method, route, minute), tally in tallies.items():
        bucket: datetime = EPOCH + timedelta(minutes=minute)
        if watermark is not None and bucket < watermark:
            bucket = watermark
        agg = Agg(
            count=tally.count,
            total=tally.sum_ms,
            min=tally.min_ms if tally.count else None,
            max=tally.max_ms if tally.count else None,
            histogram=list(tally.histogram),
        )
        if tally.client_errors:
            agg.add("4xx", tally.client_errors)
        if tally.server_errors:
            agg.add("5xx", tally.server_errors)
        key = (("route", f"{method} {route}"[:300], "requests"), bucket)
        if key in points:
            points[key].merge(agg)
        else:
            points[key] = agg
    return points_add(resolution=Resolution.MINUTE, points=points)
