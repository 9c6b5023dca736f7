"""History for pages: latency over time, time in each status per day, uptime over windows — for many targets at once.

Reads the stored metric `status` (monitoring/sources/checks.py: `breakdown` = seconds per status, the
latency histogram alongside). Each read is one query for every target asked, so a status page of 50
services costs what a page of one does. A range is covered with the coarsest finished level: a day point
when the day has one, else its hour points, else the minute points of each hour without one — never two
levels for the same time, so nothing is counted twice while the roll-ups catch up. The 90-day bars are
summed in the database instead, see `uptime_days` (which falls back to these reads when nothing is rolled up).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q

from monitoring.models import MetricPoint, MetricSeries, Resolution, RollupWatermark
from monitoring.points import Agg, floor_time, quantile, ratio

STATUS_METRIC = "status"
UP_LABEL = "passing"
DOWN_LABELS = ("critical",)
DEGRADED_LABELS = ("warning",)
MAINTENANCE_LABEL = "maintenance"
WINDOWS: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
}
DAY, HOUR, MINUTE = Resolution.DAY, Resolution.HOUR, Resolution.MINUTE


def _watermarks() -> dict[str, datetime]:
    """How far the hour and day roll-ups are final (monitoring.services.rollups), one query."""
    return dict(RollupWatermark.objects.filter(name__in=("hour", "day")).values_list("name", "position"))


def _fetch(
    kind: str, targets: list[str], start: datetime, end: datetime, metric: str, *, latency: bool = True
) -> dict[str, Levels]:
    """target -> its points in [start, end) (three queries); a target without any gets none.

    Day points over the whole range; hour points only where the day level is not final yet; minute points
    only where the hour level is not (at most their 48 h retention): a 90-day read of 50 services is about
    50 x (90 + 24 + 60) rows, not 50 x 2,160 hour points. `latency=False` leaves the histograms out (the
    uptime reads need only the time per status, and decoding JSON is most of the cost).
    """
    marks = _watermarks()
    series = dict(MetricSeries.objects.filter(kind=kind, metric=metric, target__in=targets).values_list("id", "target"))
    if not series:
        return defaultdict(lambda: Levels({}))
    hours_from = max(start, floor_time(marks["day"], DAY)) if "day" in marks else start
    minutes_from = max(start, end - timedelta(hours=49), floor_time(marks["hour"], HOUR) if "hour" in marks else start)
    fields = ["series_id", "resolution", "bucket", "count", "total", "min", "max", "histogram", "breakdown"]
    rows = (
        MetricPoint.objects.filter(
            Q(resolution=DAY, bucket__gte=floor_time(start, DAY))
            | Q(resolution=HOUR, bucket__gte=floor_time(hours_from, HOUR))
            | Q(resolution=MINUTE, bucket__gte=floor_time(minutes_from, MINUTE)),
            series_id__in=list(series),
            bucket__lt=end,
        )
        .order_by()
        .values_list(*(fields if latency else [f for f in fields if f not in ("min", "max", "histogram")]))
    )
    found: dict[str, dict] = defaultdict(dict)
    for row in rows:
        if latency:
            series_id, resolution, bucket, *values = row
            agg = Agg.from_row(*values)
        else:
            series_id, resolution, bucket, count, total, breakdown = row
            agg = Agg(count=count, total=total, breakdown=dict(breakdown or {}))
        found[series[series_id]][(resolution, bucket)] = agg
    return defaultdict(lambda: Levels({}), {target: Levels(points) for target, points in found.items()})


class Levels:
    """One target's points by (resolution, bucket), with which hours and days hold any data at all."""

    def __init__(self, points: dict) -> None:
        self.points = points
        self.hours_with_minutes = {floor_time(b, HOUR) for (r, b) in points if r == MINUTE}
        self.days_with_data = {floor_time(b, DAY) for (_r, b) in points}


def _cover(levels: Levels, start: datetime, end: datetime) -> Agg:
    """Fold the points covering [start, end), coarsest level first (see the module docstring)."""
    total = Agg()
    points, hours_with_minutes, days_with_data = levels.points, levels.hours_with_minutes, levels.days_with_data
    cursor = start
    while cursor < end:
        day = floor_time(cursor, DAY)
        if day == cursor and cursor + timedelta(days=1) <= end and (DAY, day) in points:
            total.merge(points[(DAY, day)])
            cursor += timedelta(days=1)
            continue
        if day not in days_with_data:  # nothing at any level that day: skip it whole
            cursor = min(day + timedelta(days=1), end)
            continue
        hour = floor_time(cursor, HOUR)
        if hour == cursor and cursor + timedelta(hours=1) <= end and (HOUR, hour) in points:
            total.merge(points[(HOUR, hour)])
            cursor += timedelta(hours=1)
            continue
        if hour not in hours_with_minutes:
            cursor = min(hour + timedelta(hours=1), end)
            continue
        minute = floor_time(cursor, MINUTE)
        if (MINUTE, minute) in points and minute == cursor:
            total.merge(points[(MINUTE, minute)])
        cursor = min(minute + timedelta(minutes=1), end)
    return total


@dataclass(slots=True)
class Uptime:
    """Time shares of one window: `uptime` = passing / (window - maintenance); unknown shown on its own."""

    window: str
    seconds: float
    passing: float
    degraded: float
    down: float
    maintenance: float
    unknown: float

    @property
    def uptime(self) -> float | None:
        """None when nothing at all is known of the window (no data is not 0 % uptime)."""
        return share_uptime(self.passing, self.degraded, self.down, self.maintenance, self.seconds)

    @property
    def unknown_ratio(self) -> float | None:
        return ratio(self.unknown, self.seconds - self.maintenance)


def _uptime(name: str, agg: Agg, seconds: float) -> Uptime:
    passing = agg.breakdown.get(UP_LABEL, 0.0)
    degraded = sum(agg.breakdown.get(label, 0.0) for label in DEGRADED_LABELS)
    down = sum(agg.breakdown.get(label, 0.0) for label in DOWN_LABELS)
    maintenance = agg.breakdown.get(MAINTENANCE_LABEL, 0.0)
    unknown = max(0.0, seconds - passing - degraded - down - maintenance)
    return Uptime(name, seconds, passing, degraded, down, maintenance, unknown)


def uptime_windows(
    *, kind: str, targets: list[str], now: datetime, windows: tuple[str, ...] = tuple(WINDOWS)
) -> dict[str, list[Uptime]]:
    """target -> uptime over each window ending at `now` (one query for all targets)."""
    longest = max(WINDOWS[w] for w in windows)
    found = _fetch(kind, targets, now - longest, now, STATUS_METRIC, latency=False)
    return {
        target: [_uptime(w, _cover(found[target], now - WINDOWS[w], now), WINDOWS[w].total_seconds()) for w in windows]
        for target in targets
    }


@dataclass(slots=True)
class DaySegment:
    """One day of an uptime bar: its shares and the word a reader sees (never the colour alone)."""

    day: datetime
    share: Uptime

    @property
    def status(self) -> str:
        s = self.share
        return day_status(s.passing, s.degraded, s.down, s.maintenance)


def share_uptime(passing: float, degraded: float, down: float, maintenance: float, seconds: float) -> float | None:
    """passing / (seconds - maintenance); None when nothing at all is known (no data is not 0 % uptime)."""
    if passing + degraded + down == 0:
        return None
    return ratio(passing, seconds - maintenance)


def day_status(passing: float, degraded: float, down: float, maintenance: float) -> str:
    """A day's word: `down` with any critical time, `maintenance` when it covered most of the known time,
    `degraded` with warning time, `passing` with passing time, else `unknown` (no data)."""
    if down > 0:
        return "down"
    if maintenance > 0 and maintenance >= passing + degraded:
        return "maintenance"
    if degraded > 0:
        return "degraded"
    if passing > 0:
        return "passing"
    return "unknown"


@dataclass
class LatencyPoint:
    """Latency quantiles over one bin of a chart."""

    start: datetime
    p50: float | None
    p95: float | None
    count: int


def latency_points(
    *, kind: str, target: str, start: datetime, end: datetime, bins: int = 96, metric: str = STATUS_METRIC
) -> list[LatencyPoint]:
    """p50/p95 per bin over [start, end) from the points' latency histograms (one query)."""
    points = _fetch(kind, [target], start, end, metric)[target]
    width = (end - start) / bins
    out = []
    for index in range(bins):
        low = start + width * index
        agg = _cover(points, low, low + width)
        out.append(LatencyPoint(low, quantile(agg.histogram, 0.5), quantile(agg.histogram, 0.95), agg.count))
    return out


def series_bins(
    *, kind: str, targets: list[str], metric: str, start: datetime, end: datetime, bins: int = 48
) -> dict[str, list[tuple[datetime, Agg]]]:
    """target -> (bin start, merged aggregate) per bin over [start, end) (one query for all targets)."""
    found = _fetch(kind, targets, start, end, metric)
    width = (end - start) / bins
    return {
        target: [
            (start + width * i, _cover(found[target], start + width * i, start + width * (i + 1))) for i in range(bins)
        ]
        for target in targets
    }
