"""The series API's read: points of one series over a range at a step, from the coarsest level serving it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from monitoring import conf
from monitoring.models import MetricSeries
from monitoring.points import Agg, floor_time
from monitoring.selectors.points import cover, points_fetch, watermarks
from monitoring.sources.derived import DERIVED, DerivedMetric

MAX_POINTS = 2000
# Steps offered when none is asked for: the first giving at most MAX_POINTS points from a level whose
# retention reaches back to the start is used. Past an hour, whole hours (so hour points serve them).
STEPS = (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400)
RETENTION_SETTINGS = {
    60: ("MONITORING_MINUTE_RETENTION_HOURS", 3600),
    3600: ("MONITORING_HOUR_RETENTION_DAYS", 86400),
    86400: ("MONITORING_DAY_RETENTION_DAYS", 86400),
}


def kept_since(level: int, now: datetime) -> datetime:
    """The oldest time the points of `level` still cover under the retention settings."""
    name, unit = RETENTION_SETTINGS[level]
    return now - timedelta(seconds=int(conf.get(name)) * unit)


class SeriesQueryError(ValueError):
    """A request the series read cannot answer (field -> message)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass
class SeriesAnswer:
    """Points of one series: `values` holds (bucket start, value or None when nothing is known, samples)."""

    kind: str
    target: str
    metric: str
    unit: str
    start: datetime
    end: datetime
    step: int
    resolution: int
    values: list[tuple[datetime, float | None, int]]


def choose_step(start: datetime, end: datetime, step: int | None, now: datetime | None = None) -> int:
    """The step to answer with; refuses one that is not whole minutes or gives more than MAX_POINTS points."""
    span = (end - start).total_seconds()
    now = now or timezone.now()
    if step is None:
        for candidate in STEPS:
            if math.ceil(span / candidate) <= MAX_POINTS and start >= kept_since(level_for(candidate), now):
                return candidate
        for candidate in STEPS:  # older than every retention: the coarsest that fits
            if math.ceil(span / candidate) <= MAX_POINTS and level_for(candidate) == 86400:
                return candidate
        raise SeriesQueryError("from", f"The range is too long: at most {MAX_POINTS} points of a week.")
    if step < 60 or step % 60:
        raise SeriesQueryError("step", "The step is whole minutes: 60 seconds or a multiple of it.")
    if math.ceil(span / step) > MAX_POINTS:
        raise SeriesQueryError(
            "step", f"{math.ceil(span / step)} points asked for; at most {MAX_POINTS}: use a larger step."
        )
    return step


def level_for(step: int) -> int:
    """The coarsest roll-up whose buckets divide the step."""
    for level in (86400, 3600, 60):
        if step % level == 0:
            return level
    return 60


def derived_metric(kind: str, metric: str) -> DerivedMetric:
    by_metric = DERIVED.get(kind)
    if by_metric is None:
        raise SeriesQueryError("kind", f"Unknown kind {kind!r}; one of {', '.join(sorted(DERIVED))}.")
    found = by_metric.get(metric)
    if found is None:
        raise SeriesQueryError(
            "metric", f"Unknown metric {metric!r} for {kind}; one of {', '.join(sorted(by_metric))}."
        )
    return found


def series_read(
    *, kind: str, target: str, metric: str, start: datetime, end: datetime, step: int | None = None
) -> SeriesAnswer:
    """At most MAX_POINTS points, each merging the stored points of its step; three queries whatever the size."""
    derived = derived_metric(kind, metric)
    if end <= start:
        raise SeriesQueryError("to", "`to` must be after `from`.")
    step = choose_step(start, end, step)
    level = level_for(step)
    first = floor_time(start, step)
    count = math.ceil((end - first).total_seconds() / step)
    if count > MAX_POINTS:
        count = MAX_POINTS
    last = first + timedelta(seconds=step * count)
    series_id = (
        MetricSeries.objects.filter(kind=kind, target=target, metric=derived.stored)
        .values_list("pk", flat=True)
        .first()
    )
    merged: dict[datetime, Agg] = {}
    if series_id is not None:
        plan = cover(first, last, top=level, marks=watermarks())
        for bucket, _resolution, agg in points_fetch([series_id], plan).get(series_id, []):
            slot = floor_time(bucket, step)
            if slot in merged:
                merged[slot].merge(agg)
            else:
                merged[slot] = agg
    values = []
    for index in range(count):
        slot = first + timedelta(seconds=step * index)
        agg = merged.get(slot)
        values.append((slot, None if agg is None else derived.fn(agg, step), 0 if agg is None else agg.count))
    return SeriesAnswer(kind, target, metric, derived.unit, first, last, step, level, values)
