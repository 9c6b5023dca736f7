"""Uptime over windows, the Uptime Kuma rule: time passing / (window - time in maintenance).

Time no result covers is unknown: it is reported as such, and counts against uptime (it is neither
passing nor maintenance). A window ends at the minute watermark, the last time rolled up, not at "now".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from monitoring import conf
from monitoring.models import MetricSeries, Resolution
from monitoring.points import floor_time
from monitoring.selectors.points import cover, points_fetch, watermarks

WINDOW_RE = re.compile(r"\A([1-9][0-9]{0,5})([mhd])\Z")
UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400}
FAILING = ("warning", "critical", "unknown_result")


class WindowError(ValueError):
    """A window that is not `<n>m`, `<n>h` or `<n>d` within the day-point retention."""


def parse_window(text: str) -> int:
    """`"24h"` -> 86400; refuses anything else, and windows longer than the day-point retention."""
    match = WINDOW_RE.match(text.strip())
    if not match:
        raise WindowError(f"{text!r} is not a window such as 1h, 24h, 7d, 30d or 90d.")
    seconds = int(match.group(1)) * UNIT_SECONDS[match.group(2)]
    longest = int(conf.get("MONITORING_DAY_RETENTION_DAYS")) * 86400
    if seconds > longest:
        raise WindowError(f"{text!r} is longer than the history kept ({longest // 86400} days of day points).")
    return seconds


@dataclass
class Uptime:
    """One target over one window: seconds by kind of time, and the ratio (None when nothing can be said)."""

    window: str
    start: datetime
    end: datetime
    passing: float
    failing: float
    maintenance: float
    unknown: float
    uptime: float | None


def uptime_many(
    *, targets: list[tuple[str, str]], windows: list[str], now: datetime | None = None
) -> dict[tuple[str, str], list[Uptime]]:
    """Uptime of each (kind, target) over each window: three queries whatever the number of targets or windows."""
    now = now or timezone.now()
    marks = watermarks()
    end = min(floor_time(now, 60), marks.get(Resolution.MINUTE, floor_time(now, 60)))
    spans = [(name, parse_window(name)) for name in windows]
    plans = {
        name: cover(end - timedelta(seconds=seconds), end, top=Resolution.DAY, marks=marks) for name, seconds in spans
    }
    ids = dict(
        ((kind, target), pk)
        for kind, target, pk in MetricSeries.objects.filter(
            kind__in={k for k, _ in targets}, target__in={t for _, t in targets}, metric="status"
        ).values_list("kind", "target", "pk")
    )
    union = sorted({item for plan in plans.values() for item in plan})
    points = points_fetch([ids[key] for key in targets if key in ids], union, histograms=False)
    answer: dict[tuple[str, str], list[Uptime]] = {}
    for key in targets:
        rows = points.get(ids.get(key, -1), [])
        results = []
        for name, seconds in spans:
            start = end - timedelta(seconds=seconds)
            totals = {"passing": 0.0, "failing": 0.0, "maintenance": 0.0}
            ranges: dict[int, list[tuple[datetime, datetime]]] = {}
            for resolution, low, high in plans[name]:
                ranges.setdefault(resolution, []).append((low, high))
            for bucket, level, agg in rows:
                if not any(low <= bucket < high for low, high in ranges.get(level, ())):
                    continue
                breakdown = agg.breakdown
                totals["passing"] += breakdown.get("passing", 0.0)
                totals["maintenance"] += breakdown.get("maintenance", 0.0)
                totals["failing"] += sum(breakdown.get(label, 0.0) for label in FAILING)
            known = totals["passing"] + totals["failing"] + totals["maintenance"]
            unknown = max(0.0, seconds - known)
            denominator = seconds - totals["maintenance"]
            results.append(
                Uptime(
                    window=name,
                    start=start,
                    end=end,
                    passing=round(totals["passing"], 3),
                    failing=round(totals["failing"], 3),
                    maintenance=round(totals["maintenance"], 3),
                    unknown=round(unknown, 3),
                    uptime=totals["passing"] / denominator
                    if denominator > 0 and known > totals["maintenance"]
                    else None,
                )
            )
        answer[key] = results
    return answer
