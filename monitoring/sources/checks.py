"""Check results -> per check, per instance and per service minute points of the metric `status`.

A point holds: `count` results, `total` passing results, the latency histogram/min/max, and in
`breakdown` the seconds spent in each status ("passing", "warning", "critical", "unknown_result") and in
"maintenance" (time in a maintenance window is counted there instead of in its status). A result's status
holds until the next result, or for at most its coverage (two intervals plus the timeout; a TTL check's
TTL); beyond that the time is not counted at all, and is read back as unknown.

An instance's status over time is the worst status of its checks (the registry's severity order; a check
in its coverage gap adds nothing); a service's is the worst of its instances, an instance in maintenance
counting only when every instance is.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

from django.db.models import OuterRef, Subquery

from monitoring.points import EPOCH, Agg
from monitoring.selectors.maintenance import MaintenanceMap
from monitoring.sources.base import MinuteSource, Points

MINUTE = 60
# Worst first: which status an aggregate shows when several are present at once.
RANK = {"critical": 4, "warning": 3, "unknown_result": 2, "passing": 1, "maintenance": 0}
Segment = tuple[float, float, str]  # (start, end) epoch seconds, status label


def _ts(when: datetime) -> float:
    return (when - EPOCH).total_seconds()


def _dt(seconds: float) -> datetime:
    return EPOCH + timedelta(seconds=seconds)


def _label(status: str) -> str:
    # "unknown" as a result status (a probe that could not decide) is kept apart from unknown *time*
    # (no result covering it), which is never stored.
    return "unknown_result" if status == "unknown" else status


def _clip_maintenance(segments: list[Segment], intervals: list[tuple[float, float]]) -> list[Segment]:
    """Re-label the parts of `segments` inside maintenance intervals as "maintenance"."""
    if not intervals:
        return segments
    out: list[Segment] = []
    for low, high, label in segments:
        cursor = low
        for m_low, m_high in intervals:
            if m_high <= cursor:
                continue
            if m_low >= high:
                break
            if m_low > cursor:
                out.append((cursor, m_low, label))
            out.append((max(cursor, m_low), min(high, m_high), "maintenance"))
            cursor = min(high, m_high)
            if cursor >= high:
                break
        if cursor < high:
            out.append((cursor, high, label))
    return out


def _worst_of(timelines: list[list[Segment]]) -> list[Segment]:
    """The worst label present at each moment over several timelines (gaps contribute nothing)."""
    if len(timelines) == 1:
        return timelines[0]
    edges: list[tuple[float, int, str]] = []
    for timeline in timelines:
        for low, high, label in timeline:
            edges.append((low, 1, label))
            edges.append((high, -1, label))
    edges.sort(key=lambda e: (e[0], e[1]))
    active: dict[str, int] = defaultdict(int)
    out: list[Segment] = []
    previous: float | None = None
    for at, delta, label in edges:
        if previous is not None and at > previous:
            present = [name for name, n in active.items() if n > 0]
            if present:
                worst = max(present, key=RANK.__getitem__)
                if out and out[-1][1] == previous and out[-1][2] == worst:
                    out[-1] = (out[-1][0], at, worst)
                else:
                    out.append((previous, at, worst))
        active[label] += delta
        previous = at
    return out


def _add_time(points: Points, key: tuple[str, str, str], segments: list[Segment]) -> None:
    """Add each segment's seconds to the breakdown of the minute buckets it spans."""
    for low, high, label in segments:
        cursor = low
        while cursor < high:
            bucket = cursor // MINUTE * MINUTE
            upto = min(high, bucket + MINUTE)
            agg = points.get((key, _dt(bucket)))
            if agg is None:
                agg = points[(key, _dt(bucket))] = Agg()
            agg.add(label, upto - cursor)
            cursor = upto


class ChecksSource(MinuteSource):
    """Registry check results rolled up per check, instance and service."""

    name = "checks"

    def collect(self, *, start: datetime, end: datetime, maintenance: MaintenanceMap) -> Points:
        from registry.models import Check, CheckResult

        low_ts, high_ts = _ts(start), _ts(end)
        previous = CheckResult.objects.filter(health_check=OuterRef("pk"), created_at__lt=start).order_by(
            "-created_at", "-id"
        )
        checks = {
            row[0]: row
            for row in Check.objects.annotate(
                prev_at=Subquery(previous.values("created_at")[:1]),
                prev_status=Subquery(previous.values("status")[:1]),
            ).values_list(
                "id",
                "instance_id",
                "instance__service_id",
                "kind",
                "interval",
                "timeout",
                "ttl",
                "prev_at",
                "prev_status",
            )
        }
        points: Points = {}
        timelines: dict[int, list[Segment]] = {}
        last: dict[int, tuple[float, str]] = {}

        def coverage(row: tuple) -> float:  # type: ignore[type-arg]
            return float(row[6] or row[4]) + 5 if row[3] == "ttl" else 2 * float(row[4]) + float(row[5])

        def close(check_id: int, until: float) -> None:
            held = last.get(check_id)
            if held is None:
                return
            at, label = held
            segment_end = min(until, at + coverage(checks[check_id]), high_ts)
            segment_start = max(at, low_ts)
            if segment_end > segment_start:
                timelines.setdefault(check_id, []).append((segment_start, segment_end, label))

        for check_id, row in checks.items():
            if row[7] is not None:
                last[check_id] = (_ts(row[7]), _label(row[8]))
        results = (
            CheckResult.objects.filter(created_at__gte=start, created_at__lt=end)
            .order_by("health_check_id", "created_at", "id")
            .values_list("health_check_id", "created_at", "status", "latency_ms")
        )
        for check_id, created_at, status, latency_ms in results.iterator(chunk_size=5000):
            row = checks.get(check_id)
            if row is None:
                continue
            at = _ts(created_at)
            close(check_id, at)
            last[check_id] = (at, _label(status))
            key = ("check", str(check_id), "status")
            bucket = created_at.astimezone(UTC).replace(second=0, microsecond=0)
            agg = points.get((key, bucket))
            if agg is None:
                agg = points[(key, bucket)] = Agg()
            agg.count += 1
            if status == "passing":
                agg.total += 1
            if latency_ms is not None:
                agg.observe(latency_ms)
        for check_id in list(last):
            close(check_id, high_ts)

        by_instance: dict[int, list[int]] = defaultdict(list)
        for check_id, row in checks.items():
            by_instance[row[1]].append(check_id)
        instance_timelines: dict[int, list[list[Segment]]] = defaultdict(list)
        for instance_id, check_ids in by_instance.items():
            service_id = checks[check_ids[0]][2]
            windows = [(_ts(a), _ts(b)) for a, b in maintenance.for_instance(instance_id, service_id)]
            labelled = []
            for check_id in check_ids:
                timeline = _clip_maintenance(timelines.get(check_id, []), windows)
                _add_time(points, ("check", str(check_id), "status"), timeline)
                if timeline:
                    labelled.append(timeline)
            merged = _worst_of(labelled) if labelled else []
            _add_time(points, ("instance", str(instance_id), "status"), merged)
            if merged:
                instance_timelines[service_id].append(merged)
        for service_id, instance_lines in instance_timelines.items():
            merged = _worst_of(instance_lines)
            _add_time(points, ("service", str(service_id), "status"), merged)
        self._fold_counts(points, checks)
        return points

    @staticmethod
    def _fold_counts(points: Points, checks: dict) -> None:  # type: ignore[type-arg]
        """Add each check's result counts and latencies into its instance's and service's points."""
        for ((kind, target, metric), bucket), agg in list(points.items()):
            if kind != "check" or agg.count == 0:
                continue
            row = checks[int(target)]
            for parent in (("instance", str(row[1]), metric), ("service", str(row[2]), metric)):
                into = points.get((parent, bucket))
                if into is None:
                    into = points[(parent, bucket)] = Agg()
                counts = Agg(agg.count, agg.total, agg.min, agg.max, agg.histogram)
                into.merge(counts)
