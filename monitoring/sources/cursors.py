"""Counters another app keeps as running totals, turned into per-minute differences with a stored cursor."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection

from monitoring.models import MetricSeries
from monitoring.services.metrics import SeriesKey, series_ensure


def cursors_swap(current: dict[SeriesKey, dict]) -> dict[SeriesKey, dict | None]:  # type: ignore[type-arg]
    """Store `current` as each series' cursor and return the previous ones (None: first sample).

    Runs inside the caller's transaction; the series rows are locked (PostgreSQL), so two samplers at once
    take turns and the second sees a difference of zero.
    """
    if not current:
        return {}
    ids = series_ensure(keys=current)
    queryset = MetricSeries.objects.filter(pk__in=list(ids.values())).order_by("pk")
    if connection.vendor == "postgresql":
        queryset = queryset.select_for_update()
    rows = {row.pk: row for row in queryset}
    previous: dict[SeriesKey, dict | None] = {}  # type: ignore[type-arg]
    changed = []
    for key, values in current.items():
        row = rows[ids[key]]
        previous[key] = row.cursor or None
        row.cursor = values
        changed.append(row)
    MetricSeries.objects.bulk_update(changed, ["cursor"], batch_size=2000)
    return previous


def difference(new: dict, old: dict | None, names: Iterable[str]) -> dict[str, float] | None:  # type: ignore[type-arg]
    """new - old per name; None on the first sample; from zero when a total went down (rows reset/pruned)."""
    if old is None:
        return None
    if any(float(new.get(n, 0)) < float(old.get(n, 0)) for n in names):
        return {n: float(new.get(n, 0)) for n in names}
    return {n: float(new.get(n, 0)) - float(old.get(n, 0)) for n in names}
