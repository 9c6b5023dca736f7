"""Mergeable aggregates: what one point holds, how points combine, and what is derived from them. Pure."""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from monitoring.conf import LATENCY_BOUNDS_MS

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def floor_time(when: datetime, seconds: int) -> datetime:
    """The start of the `seconds`-wide bucket holding `when` (buckets aligned on the Unix epoch, UTC)."""
    offset = int((when - EPOCH).total_seconds()) // seconds * seconds
    return EPOCH + timedelta(seconds=offset)


def ceil_time(when: datetime, seconds: int) -> datetime:
    """The first bucket start at or after `when`."""
    floor = floor_time(when, seconds)
    return floor if floor == when else floor + timedelta(seconds=seconds)


@dataclass(slots=True)
class Agg:
    """An aggregate being built or read: see `MetricPoint` for the meaning of each field."""

    count: int = 0
    total: float = 0.0
    min: float | None = None
    max: float | None = None
    histogram: list[int] | None = None
    breakdown: dict[str, float] = field(default_factory=dict)

    def observe(self, value: float) -> None:
        """Add one sample value (latency in ms) to min/max/histogram (not to `count`/`total`)."""
        self.min = value if self.min is None or value < self.min else self.min
        self.max = value if self.max is None or value > self.max else self.max
        if self.histogram is None:
            self.histogram = [0] * (len(LATENCY_BOUNDS_MS) + 1)
        self.histogram[bisect.bisect_left(LATENCY_BOUNDS_MS, value)] += 1

    def add(self, label: str, amount: float) -> None:
        self.breakdown[label] = self.breakdown.get(label, 0) + amount

    def merge(self, other: Agg) -> None:
        """Fold `other` in: sums add, extremes combine; exact whatever the grouping."""
        self.count += other.count
        self.total += other.total
        if other.min is not None:
            self.min = other.min if self.min is None else min(self.min, other.min)
        if other.max is not None:
            self.max = other.max if self.max is None else max(self.max, other.max)
        if other.histogram:
            if self.histogram is None:
                self.histogram = list(other.histogram)
            else:
                self.histogram = [a + b for a, b in zip(self.histogram, other.histogram, strict=False)]
        for label, amount in other.breakdown.items():
            self.breakdown[label] = self.breakdown.get(label, 0) + amount

    def as_fields(self) -> dict:
        """The `MetricPoint` columns for this aggregate (breakdown values rounded to the millisecond)."""
        breakdown = {k: round(v, 3) for k, v in sorted(self.breakdown.items())} or None
        return {
            "count": self.count,
            "total": self.total,
            "min": self.min,
            "max": self.max,
            "histogram": sparse(self.histogram),
            "breakdown": breakdown,
        }

    @classmethod
    def from_row(cls, count: int, total: float, low: float | None, high: float | None, hist, breakdown) -> Agg:  # type: ignore[no-untyped-def]
        return cls(count, total, low, high, dense(hist), dict(breakdown or {}))


# Stored histograms are sparse text, "index:count" for the non-zero buckets ("9:6,10:2"): a check's latency
# usually falls in one to three buckets, and as text in the JSON column the histogram takes ~8 bytes where a
# jsonb object takes ~70 and the full list ~200 (the point row is then ~190 bytes on PostgreSQL).
def sparse(histogram: list[int] | None) -> str | None:
    if not histogram:
        return None
    return ",".join(f"{index}:{count}" for index, count in enumerate(histogram) if count) or None


def dense(stored: str | dict[str, int] | list[int] | None) -> list[int] | None:
    """A stored histogram (sparse text; a list or object are read too) as the full list of counts."""
    if not stored:
        return None
    if isinstance(stored, list):
        return list(stored)
    histogram = [0] * (len(LATENCY_BOUNDS_MS) + 1)
    pairs = stored.items() if isinstance(stored, dict) else (item.split(":") for item in stored.split(","))
    for index, count in pairs:
        histogram[int(index)] += int(count)
    return histogram


def quantile(histogram: list[int] | None, q: float) -> float | None:
    """The `q` quantile from a histogram, interpolated linearly inside its bucket (Prometheus-style).

    Values above the last bound are reported as that bound (the histogram knows no more).
    """
    if not histogram:
        return None
    count = sum(histogram)
    if count == 0:
        return None
    rank = q * count
    seen = 0
    for index, bucket_count in enumerate(histogram):
        if bucket_count and seen + bucket_count >= rank:
            if index >= len(LATENCY_BOUNDS_MS):
                return float(LATENCY_BOUNDS_MS[-1])
            low = 0.0 if index == 0 else float(LATENCY_BOUNDS_MS[index - 1])
            high = float(LATENCY_BOUNDS_MS[index])
            return low + (high - low) * (rank - seen) / bucket_count
        seen += bucket_count
    return float(LATENCY_BOUNDS_MS[-1])


def ratio(numerator: float, denominator: float) -> float | None:
    """`numerator / denominator`, or None when the denominator is zero (nothing known)."""
    if denominator <= 0 or math.isnan(denominator):
        return None
    return numerator / denominator
