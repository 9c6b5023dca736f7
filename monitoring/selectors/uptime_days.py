"""Uptime bars: the seconds in each status per UTC day, for many targets at once (status page, service page).

A running system has both roll-up watermarks; then each day's seconds are summed by the database, one row
per target and day (`_day_sums`), and the days before the day watermark — final, they never change again —
are kept in the shared cache per series until the calendar moves on. A page built again then reads only
today's points: at 25 public services x 90 days it was 2,250 day points decoded one by one on every build.
Without watermarks (a fresh install, nothing rolled up yet) the points are read one by one as
`dashboard_history` covers them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.cache import cache
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import FloatField, Func, IntegerField, Q, Sum
from django.db.models.fields.json import KT
from django.db.models.functions import Cast

from monitoring.models import MetricPoint, MetricSeries
from monitoring.points import EPOCH, floor_time
from monitoring.selectors.dashboard_history import (
    DAY,
    DEGRADED_LABELS,
    DOWN_LABELS,
    HOUR,
    MAINTENANCE_LABEL,
    MINUTE,
    STATUS_METRIC,
    UP_LABEL,
    DaySegment,
    Uptime,
    _cover,
    _fetch,
    _uptime,
    _watermarks,
)

# Seconds per status as a day segment reads them, in this order: passing, degraded, down, maintenance.
SHARE_LABELS = (UP_LABEL, *DEGRADED_LABELS, *DOWN_LABELS, MAINTENANCE_LABEL)
Shares = tuple[float, float, float, float]
NOTHING: Shares = (0.0, 0.0, 0.0, 0.0)
CACHE_PREFIX = "monitoring:days"
Calendar = list[tuple[int, datetime, str, float]]  # (day number, start, name, seconds so far)


@dataclass
class DayBars:
    """The day bars of several targets as plain numbers: one calendar, and each target's seconds per day.

    Day segments (`segments`) are built only on request: the status page draws its 2,250 days from the
    numbers, without an object per day — those objects, alive until the page was built, made Python's
    full garbage collections (70-90 ms at a time) come every ~25 builds, which was most of its p99.
    """

    calendar: Calendar
    shares: dict[str, dict[int, Shares]]

    def rows(self, target: str) -> Iterator[tuple[str, float, Shares]]:
        """(day name, seconds so far, (passing, degraded, down, maintenance)) for each day, oldest first."""
        days = self.shares.get(target, {})
        for number, _start, name, seconds in self.calendar:
            yield name, seconds, days.get(number, NOTHING)

    def segments(self, target: str) -> list[DaySegment]:
        """One target's day segments (a day without a row is unknown)."""
        days = self.shares.get(target, {})
        out = []
        for number, start, name, seconds in self.calendar:
            passing, degraded, down, maintenance = days.get(number, NOTHING)
            unknown = max(0.0, seconds - passing - degraded - down - maintenance)
            out.append(DaySegment(start, Uptime(name, seconds, passing, degraded, down, maintenance, unknown)))
        return out

    def totals(self, target: str) -> tuple[float, float, bool]:
        """(passing seconds, seconds outside maintenance, whether anything is known) over all the days."""
        passing = covered = 0.0
        known = False
        for _name, seconds, (up, degraded, down, maintenance) in self.rows(target):
            passing += up
            covered += seconds - maintenance
            known = known or up + degraded + down > 0
        return passing, covered, known


def status_seconds(*, kind: str, targets: list[str], days: int, now: datetime) -> dict[str, list[DaySegment]]:
    """target -> one segment per UTC day for the last `days` days, today (up to `now`) last."""
    bars = day_bars(kind=kind, targets=targets, days=days, now=now)
    return {target: bars.segments(target) for target in targets}


def day_bars(*, kind: str, targets: list[str], days: int, now: datetime) -> DayBars:
    """The last `days` UTC days of each target, today (up to `now`) last.

    Three queries (watermarks, series, sums) and one cache read, whatever the number of targets.
    """
    today = floor_time(now, DAY)
    first = today - timedelta(days=days - 1)
    calendar = _calendar(first, days, now)
    marks = _watermarks()
    if "day" not in marks or "hour" not in marks:
        return _bars_by_points(kind, targets, calendar, now)
    series = dict(
        MetricSeries.objects.filter(kind=kind, metric=STATUS_METRIC, target__in=targets).values_list("id", "target")
    )
    sums = _final_and_live(list(series), first, now, marks)
    return DayBars(calendar, {target: sums.get(series_id, {}) for series_id, target in series.items()})


def _final_and_live(
    series_ids: list[int], first: datetime, now: datetime, marks: dict[str, datetime]
) -> dict[int, dict[int, Shares]]:
    """series id -> day number -> shares: final days from the cache where it has them, the rest from one query.

    The final days of a series missing from the cache are read in the same query as every series' live
    days, and stored for the next build.
    """
    if not series_ids:
        return {}
    final = max(first, min(floor_time(marks["day"], DAY), floor_time(now, DAY)))
    first_day, final_day = _day_number(first), _day_number(final)
    keys = {series_id: f"{CACHE_PREFIX}:{series_id}:{first_day}:{final_day}" for series_id in series_ids}
    cached = cache.get_many(list(keys.values())) if final > first else {}
    hit = {series_id: cached[key] for series_id, key in keys.items() if key in cached}
    missing = [series_id for series_id in series_ids if series_id not in hit]
    where = Q()
    if missing:
        where |= Q(series_id__in=missing) & _plan(first, now, marks)
    if hit:
        where |= Q(series_id__in=list(hit)) & _plan(final, now, marks)
    found = _day_sums(where)
    if missing and final > first:
        stored = {sid: {d: v for d, v in found.get(sid, {}).items() if d < final_day} for sid in missing}
        # Kept until the oldest day shown changes (next UTC midnight): the key names it, so nothing stale is read.
        seconds = int((floor_time(now, DAY) + timedelta(days=1) - now).total_seconds()) + 60
        cache.set_many({keys[sid]: days for sid, days in stored.items()}, seconds)
    for series_id, days in hit.items():
        found.setdefault(series_id, {}).update(days)
    return found


def _plan(first: datetime, now: datetime, marks: dict[str, datetime]) -> Q:
    """Disjoint ranges covering [first, now): each level only where it is final and the coarser one is not.

    Day points before the day watermark, hour points from there to the hour watermark, minute points after
    it (within their 48 h retention) — the coverage `dashboard_history._cover` picks point by point, since
    the roll-ups write no point past their own watermark. Disjoint, so a plain SUM counts no time twice.
    """
    day_mark, hour_mark = floor_time(marks["day"], DAY), floor_time(marks["hour"], HOUR)
    plan = (
        (DAY, first, min(day_mark, floor_time(now, DAY))),
        (HOUR, max(first, day_mark), min(hour_mark, floor_time(now, HOUR))),
        (MINUTE, floor_time(max(first, day_mark, hour_mark, now - timedelta(hours=49)), MINUTE), now),
    )
    where = Q(pk__in=[])
    for resolution, low, high in plan:
        if low < high:
            where |= Q(resolution=resolution, bucket__gte=low, bucket__lt=high)
    return where


class EpochDay(Func):
    """The UTC day number of a timestamp (days since 1970-01-01), computed by the database.

    An integer per row instead of a truncated timestamp: turning 2,250 of those back into aware datetimes in
    Python cost more than the query did.
    """

    output_field = IntegerField()
    template = "CAST(FLOOR(EXTRACT(EPOCH FROM %(expressions)s) / 86400) AS integer)"

    def as_sqlite(self, compiler, connection, **extra):  # type: ignore[no-untyped-def]
        # Django keeps SQLite datetimes as UTC text, which strftime('%s') reads as seconds since the epoch.
        template = "(CAST(strftime('%%%%s', %(expressions)s) AS integer) / 86400)"
        return self.as_sql(compiler, connection, template=template, **extra)


def _day_sums(where: Q) -> dict[int, dict[int, Shares]]:
    """series id -> day number -> (passing, degraded, down, maintenance) seconds of the points `where` selects."""
    sums = {
        f"s{index}": Sum(Cast(KT(f"breakdown__{label}"), FloatField()), default=0.0)
        for index, label in enumerate(SHARE_LABELS)
    }
    rows = (
        MetricPoint.objects.filter(where)
        .annotate(day=EpochDay("bucket"))
        .order_by()
        .values("series_id", "day")
        .annotate(**sums)
        .values_list("series_id", "day", *sums)
    )
    try:
        sql, params = rows.query.sql_with_params()
    except EmptyResultSet:
        return {}
    # Through the cursor: the ORM's per-row converters were a third of this read, and the columns are
    # already plain integers and floats on both backends.
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        fetched = cursor.fetchall()
    found: dict[int, dict[int, Shares]] = defaultdict(dict)
    degraded, down = 1 + len(DEGRADED_LABELS), 1 + len(DEGRADED_LABELS) + len(DOWN_LABELS)
    for series_id, day, *values in fetched:
        found[series_id][day] = (values[0], sum(values[1:degraded]), sum(values[degraded:down]), values[down])
    return dict(found)


def _day_number(when: datetime) -> int:
    return int((when - EPOCH).total_seconds()) // 86400


def _calendar(first: datetime, days: int, now: datetime) -> Calendar:
    """(day number, start, name, seconds so far) of each day: computed once per read, shared by every target."""
    base = _day_number(first)
    out = []
    for index in range(days):
        start = first + timedelta(days=index)
        out.append((base + index, start, start.date().isoformat(), min(86400.0, (now - start).total_seconds())))
    return out


def _bars_by_points(kind: str, targets: list[str], calendar: Calendar, now: datetime) -> DayBars:
    """`day_bars` point by point, for a system whose roll-ups have no watermark yet (nothing is final)."""
    first = calendar[0][1]
    found = _fetch(kind, targets, first, now, STATUS_METRIC, latency=False)
    shares: dict[str, dict[int, Shares]] = {}
    for target in targets:
        points = found[target]
        days: dict[int, Shares] = {}
        for number, start, name, seconds in calendar:
            day_point = points.points.get((DAY, start))
            if day_point is not None and seconds == 86400.0:  # the usual case: one final day point
                share = _uptime(name, day_point, 86400.0)
            else:
                share = _uptime(name, _cover(points, start, min(start + timedelta(days=1), now)), seconds)
            days[number] = (share.passing, share.degraded, share.down, share.maintenance)
        shares[target] = days
    return DayBars(calendar, shares)
