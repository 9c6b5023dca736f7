"""Maintenance windows as concrete intervals: recurring ones expanded in their own time zone, across DST.

The registry's per-instance maintenance flag is the same concept: `services.maintenance.maintenance_flags_sync`
turns each flag into an open-ended window (origin `registry_flag`) and closes it when the flag is cleared;
`in_maintenance` also honours a flag set since the last sync, so "in maintenance now" never lags.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.utils import timezone

from monitoring.models import MaintenanceKind, MaintenanceScope, MaintenanceWindow

Interval = tuple[datetime, datetime]
FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)


def window_intervals(window: MaintenanceWindow, start: datetime, end: datetime) -> list[Interval]:
    """The UTC intervals of `window` that overlap [start, end), clipped to it, in time order.

    A recurring window starts at `start_time` wall-clock in its zone on each chosen weekday and lasts
    `duration_minutes` of real time. A start time that does not exist that day (skipped by a DST change)
    is read with the offset in force before the change, as `zoneinfo` does (fold=0), so it moves later by
    the size of the gap rather than vanishing; a repeated one (fall back) is its first occurrence.
    """
    if start >= end or not window.enabled:
        return []
    if window.kind == MaintenanceKind.ONE_OFF:
        if window.starts_at is None:
            return []
        low, high = max(start, window.starts_at), min(end, window.ends_at or FAR_FUTURE)
        return [(low, high)] if low < high else []
    if not window.weekdays or window.start_time is None or not window.duration_minutes:
        return []
    zone = ZoneInfo(window.timezone)
    duration = timedelta(minutes=window.duration_minutes)
    bound_low = max(start, window.starts_at) if window.starts_at else start
    bound_high = min(end, window.ends_at) if window.ends_at else end
    if bound_low >= bound_high:
        return []
    # Local dates whose occurrence could reach into the range: from (start - duration) to end, plus a day
    # of slack on each side for the zone's offset.
    first = (bound_low - duration).astimezone(zone).date() - timedelta(days=1)
    last = bound_high.astimezone(zone).date() + timedelta(days=1)
    weekdays = set(window.weekdays)
    intervals: list[Interval] = []
    day: date = first
    while day <= last:
        if day.weekday() in weekdays:
            begins = datetime.combine(day, window.start_time, tzinfo=zone).astimezone(UTC)
            low, high = max(begins, bound_low), min(begins + duration, bound_high)
            if low < high:
                intervals.append((low, high))
        day += timedelta(days=1)
    return merge_intervals(intervals)


def merge_intervals(intervals: list[Interval]) -> list[Interval]:
    """Sorted, with overlapping or touching intervals joined."""
    merged: list[Interval] = []
    for low, high in sorted(intervals):
        if merged and low <= merged[-1][1]:
            if high > merged[-1][1]:
                merged[-1] = (merged[-1][0], high)
        else:
            merged.append((low, high))
    return merged


@dataclass
class MaintenanceMap:
    """Maintenance intervals over a range, by scope; `for_instance` / `for_service` combine the scopes."""

    everything: list[Interval] = field(default_factory=list)
    services: dict[int, list[Interval]] = field(default_factory=lambda: defaultdict(list))
    instances: dict[int, list[Interval]] = field(default_factory=lambda: defaultdict(list))

    def for_service(self, service_id: int) -> list[Interval]:
        return merge_intervals([*self.everything, *self.services.get(service_id, [])])

    def for_instance(self, instance_id: int, service_id: int) -> list[Interval]:
        return merge_intervals(
            [*self.everything, *self.services.get(service_id, []), *self.instances.get(instance_id, [])]
        )


def maintenance_map(start: datetime, end: datetime) -> MaintenanceMap:
    """Every window's intervals overlapping [start, end), by scope (one query)."""
    result = MaintenanceMap()
    for window in MaintenanceWindow.objects.overlapping(start, end):
        intervals = window_intervals(window, start, end)
        if not intervals:
            continue
        if window.scope == MaintenanceScope.EVERYTHING:
            result.everything.extend(intervals)
        elif window.scope == MaintenanceScope.SERVICE and window.service_id:
            result.services[window.service_id].extend(intervals)
        elif window.scope == MaintenanceScope.INSTANCE and window.instance_id:
            result.instances[window.instance_id].extend(intervals)
    result.everything = merge_intervals(result.everything)
    return result


def in_maintenance(
    *, service_id: int | None = None, instance_id: int | None = None, at: datetime | None = None
) -> bool:
    """Whether the instance (or, without one, the service; without either, everything) is in maintenance at `at`.

    An instance whose registry flag is set counts from the moment it is set, before the next sync makes
    it a window.
    """
    from registry.models import Instance

    at = at or timezone.now()
    if instance_id is not None:
        row = Instance.objects.filter(pk=instance_id).values_list("service_id", "maintenance").first()
        if row is None:
            return False
        service_id, flagged = row
        if flagged:
            return True
    found = maintenance_map(at, at + timedelta(microseconds=1))
    if instance_id is not None and service_id is not None:
        return bool(found.for_instance(instance_id, service_id))
    if service_id is not None:
        return bool(found.for_service(service_id))
    return bool(found.everything)


def windows_between(start: datetime, end: datetime) -> list[tuple[MaintenanceWindow, Interval]]:
    """(window, interval) for every occurrence overlapping [start, end), by start time: active and upcoming."""
    rows = MaintenanceWindow.objects.overlapping(start, end).select_related("service", "instance__service")
    found = [(window, interval) for window in rows for interval in window_intervals(window, start, end)]
    return sorted(found, key=lambda item: (item[1][0], item[0].pk))


def overlap_seconds(intervals: list[Interval], start: datetime, end: datetime) -> float:
    """Seconds of [start, end) covered by the (merged) `intervals`."""
    covered = 0.0
    for low, high in intervals:
        if high <= start:
            continue
        if low >= end:
            break
        covered += (min(high, end) - max(low, start)).total_seconds()
    return covered
