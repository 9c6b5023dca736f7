"""The base classes of metric sources: what another app records, turned into minute points.

A `MinuteSource` recomputes whole minute buckets from rows the other app keeps (so a roll-up run can be
repeated or catch up without counting anything twice); a `Sampler` reads counters or gauges another app
keeps in its own rows or in the broker and stores what changed since the previous sample.
Each kind also names the values the series API derives from its stored points (`DerivedMetric`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from monitoring.points import Agg
from monitoring.selectors.maintenance import MaintenanceMap

PointKey = tuple[tuple[str, str, str], datetime]  # ((kind, target, metric), bucket)
Points = dict[PointKey, Agg]


@dataclass(frozen=True)
class DerivedMetric:
    """A value the API reads from points of the stored metric `stored`: fn(aggregate, bucket seconds)."""

    stored: str
    fn: Callable[[Agg, float], float | None]
    unit: str = ""


class MinuteSource:
    """Recomputes the minute points of its series for [start, end) from the source rows."""

    name: ClassVar[str] = ""

    def collect(self, *, start: datetime, end: datetime, maintenance: MaintenanceMap) -> Points:
        raise NotImplementedError


class Sampler:
    """Reads current counters/gauges and returns the minute points to add (differences since last time)."""

    name: ClassVar[str] = ""

    def sample(self, *, now: datetime) -> Points:
        raise NotImplementedError
