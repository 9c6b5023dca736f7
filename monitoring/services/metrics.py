"""The metric store's writes: series ensured in bulk, points replaced (roll-ups) or added to (counters).

Every write is a bulk statement: one upsert for series, one for points, whatever the number of rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime

from django.db import connection, transaction

from monitoring.models import MetricPoint, MetricSeries, RollupWatermark
from monitoring.points import Agg

SeriesKey = tuple[str, str, str]  # (kind, target, metric)
POINT_FIELDS = ["count", "total", "min", "max", "histogram", "breakdown"]


def series_ensure(*, keys: Iterable[SeriesKey]) -> dict[SeriesKey, int]:
    """The ids of the series `keys`, creating the missing ones (one insert, one select)."""
    wanted = set(keys)
    if not wanted:
        return {}
    ids = _series_ids(wanted)
    missing = wanted - ids.keys()
    if missing:
        MetricSeries.objects.bulk_create(
            [MetricSeries(kind=k, target=t, metric=m) for k, t, m in sorted(missing)], ignore_conflicts=True
        )
        ids.update(_series_ids(missing))
    return ids


def _series_ids(keys: set[SeriesKey]) -> dict[SeriesKey, int]:
    found: dict[SeriesKey, int] = {}
    by_kind: dict[str, set[str]] = {}
    for kind, target, _ in keys:
        by_kind.setdefault(kind, set()).add(target)
    for kind, all_targets in by_kind.items():
        targets = sorted(all_targets)
        # Chunked: SQLite bounds the number of parameters of one statement.
        for offset in range(0, len(targets), 5000):
            rows = MetricSeries.objects.filter(kind=kind, target__in=targets[offset : offset + 5000]).values_list(
                "kind", "target", "metric", "id"
            )
            found.update({(k, t, m): pk for k, t, m, pk in rows if (k, t, m) in keys})
    return found


def points_replace(*, resolution: int, points: Mapping[tuple[SeriesKey, datetime], Agg]) -> int:
    """Write `points` as the whole content of their buckets (bulk upsert): rewriting them changes nothing.

    Roll-ups recompute a bucket from its source and replace it, which is what makes a second run, or a
    catch-up over buckets already done, leave the rows as they are.
    """
    if not points:
        return 0
    ids = series_ensure(keys={key for key, _ in points})
    return points_replace_by_id(
        resolution=resolution, points={(ids[key], bucket): agg for (key, bucket), agg in points.items()}
    )


def points_replace_by_id(*, resolution: int, points: Mapping[tuple[int, datetime], Agg]) -> int:
    """`points_replace` for points already keyed by series id (the coarser roll-ups)."""
    if not points:
        return 0
    if connection.vendor == "postgresql":
        return _replace_postgresql(resolution, points)
    rows = [
        MetricPoint(series_id=series_id, resolution=resolution, bucket=bucket, **agg.as_fields())
        for (series_id, bucket), agg in points.items()
    ]
    MetricPoint.objects.bulk_create(
        rows,
        batch_size=2000,
        update_conflicts=True,
        unique_fields=["series", "resolution", "bucket"],
        update_fields=POINT_FIELDS,
    )
    return len(rows)


def _replace_postgresql(resolution: int, points: Mapping[tuple[int, datetime], Agg]) -> int:
    """One `INSERT … SELECT FROM unnest(arrays) ON CONFLICT DO UPDATE` per 20,000 points.

    The roll-up's hot path: building model instances and their per-field conversions cost more than the
    statement itself (bench/monitoring_rollup.py).
    """
    table = MetricPoint._meta.db_table
    items = list(points.items())
    for offset in range(0, len(items), 20000):
        columns: list[list] = [[], [], [], [], [], [], [], []]  # type: ignore[type-arg]
        for (series_id, bucket), agg in items[offset : offset + 20000]:
            fields = agg.as_fields()
            for column, value in zip(
                columns,
                (series_id, bucket, fields["count"], fields["total"], fields["min"], fields["max"]),
                strict=False,
            ):
                column.append(value)
            columns[6].append(None if fields["histogram"] is None else json.dumps(fields["histogram"]))
            columns[7].append(None if fields["breakdown"] is None else json.dumps(fields["breakdown"]))
        with connection.cursor() as cursor:
            cursor.execute(
                f'INSERT INTO "{table}" (series_id, resolution, bucket, count, total, min, max, histogram, breakdown) '  # noqa: S608 - our table
                "SELECT s, %s, b, c, t, lo, hi, h::jsonb, d::jsonb FROM unnest(%s::bigint[], %s::timestamptz[], "
                "%s::bigint[], %s::float8[], %s::float8[], %s::float8[], %s::text[], %s::text[]) "
                "AS v(s, b, c, t, lo, hi, h, d) "
                "ON CONFLICT (series_id, resolution, bucket) DO UPDATE SET count = EXCLUDED.count, "
                "total = EXCLUDED.total, min = EXCLUDED.min, max = EXCLUDED.max, "
                "histogram = EXCLUDED.histogram, breakdown = EXCLUDED.breakdown",
                [resolution, *columns],
            )
    return len(items)


@transaction.atomic
def points_add(*, resolution: int, points: Mapping[tuple[SeriesKey, datetime], Agg]) -> int:
    """Add `points` to what their buckets already hold (for deltas folded in by several processes).

    Missing rows are created empty first (insert, ignoring conflicts), then every row is locked
    (PostgreSQL) and rewritten with the sum: two processes adding to the same bucket at once both count.
    A constant number of statements whatever the number of points.
    """
    if not points:
        return 0
    ids = series_ensure(keys={key for key, _ in points})
    wanted = {(ids[key], bucket): agg for (key, bucket), agg in points.items()}
    MetricPoint.objects.bulk_create(
        [MetricPoint(series_id=sid, resolution=resolution, bucket=bucket) for sid, bucket in wanted],
        ignore_conflicts=True,
        batch_size=2000,
    )
    queryset = MetricPoint.objects.filter(
        resolution=resolution, series_id__in={sid for sid, _ in wanted}, bucket__in={b for _, b in wanted}
    ).order_by("pk")
    if connection.vendor == "postgresql":
        queryset = queryset.select_for_update()
    changed = []
    for row in queryset:
        delta = wanted.get((row.series_id, row.bucket))
        if delta is None:
            continue
        merged = Agg.from_row(row.count, row.total, row.min, row.max, row.histogram, row.breakdown)
        merged.merge(delta)
        for name, value in merged.as_fields().items():
            setattr(row, name, value)
        changed.append(row)
    MetricPoint.objects.bulk_update(changed, POINT_FIELDS, batch_size=2000)
    return len(changed)


def watermark_get(*, name: str, lock: bool = False) -> datetime | None:
    """Where the roll-up `name` stands (every bucket before it is final); `lock` holds the row (PostgreSQL)."""
    queryset = RollupWatermark.objects.filter(name=name)
    if lock and connection.vendor == "postgresql":
        queryset = queryset.select_for_update()
    row = queryset.values_list("position", flat=True).first()
    return row


def watermark_set(*, name: str, position: datetime) -> None:
    """Move the roll-up `name` to `position` (inside the transaction that wrote the buckets before it)."""
    RollupWatermark.objects.update_or_create(name=name, defaults={"position": position})
