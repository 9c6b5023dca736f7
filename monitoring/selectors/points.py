"""Reading points across roll-up levels: the coarsest level where it is final, finer levels for the edges.

`cover` plans which level serves which part of [start, end): a level's points are used only between its
own bucket boundaries and below its watermark (where they are final); the head before the first boundary
and the tail after the watermark come from the next finer level, down to minutes. `points_fetch` reads
every planned range of every series in one query.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db.models import Q

from monitoring.models import MetricPoint, Resolution, RollupWatermark
from monitoring.points import Agg, ceil_time, floor_time

LEVELS = (Resolution.DAY, Resolution.HOUR, Resolution.MINUTE)
WATERMARK_NAMES = {Resolution.MINUTE: "minute", Resolution.HOUR: "hour", Resolution.DAY: "day"}
Plan = list[tuple[int, datetime, datetime]]  # (resolution, start, end)
FIELDS = ("series_id", "bucket", "resolution", "count", "total", "min", "max")


def watermarks() -> dict[int, datetime]:
    """Each level's watermark (levels never rolled up are absent): one query."""
    names = {name: level for level, name in WATERMARK_NAMES.items()}
    rows = RollupWatermark.objects.filter(name__in=list(names)).values_list("name", "position")
    return {names[name]: position for name, position in rows}


def cover(start: datetime, end: datetime, *, top: int, marks: dict[int, datetime]) -> Plan:
    """Which level serves which part of [start, end), using levels no coarser than `top`."""
    levels = [level for level in LEVELS if level <= top]
    return _cover(start, end, levels, marks)


def _cover(start: datetime, end: datetime, levels: list[int], marks: dict[int, datetime]) -> Plan:
    if start >= end:
        return []
    level, finer = levels[0], levels[1:]
    if not finer:
        return [(level, floor_time(start, level), end)]
    first = ceil_time(start, level)
    last = min(floor_time(end, level), marks.get(level, first))
    if first >= last:
        return _cover(start, end, finer, marks)
    return [*_cover(start, first, finer, marks), (level, first, last), *_cover(last, end, finer, marks)]


def points_fetch(
    series_ids: Iterable[int], plan: Plan, *, histograms: bool = True
) -> dict[int, list[tuple[datetime, int, Agg]]]:
    """series id -> [(bucket, resolution, aggregate)] for every planned range, in one query.

    `histograms=False` leaves them out (uptime reads only the breakdown).
    """
    ids = list(series_ids)
    if not ids or not plan:
        return {}
    where = Q()
    for resolution, low, high in plan:
        where |= Q(resolution=resolution, bucket__gte=low, bucket__lt=high)
    rows = (
        MetricPoint.objects.filter(where, series_id__in=ids)
        .order_by()
        .values_list(*FIELDS[:7], "histogram" if histograms else "min", "breakdown")
    )
    found: dict[int, list[tuple[datetime, int, Agg]]] = {}
    for series_id, bucket, resolution, count, total, low, high, histogram, breakdown in rows:
        agg = Agg.from_row(count, total, low, high, histogram if histograms else None, breakdown)
        found.setdefault(series_id, []).append((bucket, resolution, agg))
    return found
