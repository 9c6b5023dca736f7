"""Per pipeline and step counters, kept in memory per packet and folded into the database every few seconds.

The sync path never writes the database per packet: each process adds to in-memory counters, and folds
them into `StepStats` rows at most every `PIPELINE_STATS_FLUSH_SECONDS` (after a request, after each
worker task, at exit, and before `GET .../metrics/` answers). Both the API and /metrics read those rows
(see `pipelines.metrics.StepStatsCollector`), so they report totals across processes and hosts, and a
packet costs a few integer additions instead of a dozen Prometheus updates.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from typing import Any

from django.db import transaction

from controlplane.observability.metrics import LATENCY_BUCKETS
from pipelines.conf import stats_flush_seconds
from pipelines.executor import DROPPED, FAILED, SUCCEEDED, RunResult

logger = logging.getLogger("pipelines.stats")
COUNTERS = ("received", "sent", "dropped", "errors", "skipped")
BUCKET_BOUNDS_MS = tuple(b * 1000 for b in LATENCY_BUCKETS)


class _Tally:
    __slots__ = ("received", "sent", "dropped", "errors", "skipped", "latency_sum_ms", "latency_count", "buckets")

    def __init__(self) -> None:
        self.received = self.sent = self.dropped = self.errors = self.skipped = 0
        self.latency_sum_ms = 0.0
        self.latency_count = 0
        self.buckets = [0] * (len(BUCKET_BOUNDS_MS) + 1)

    def observe(self, duration_ms: float) -> None:
        self.latency_sum_ms += duration_ms
        self.latency_count += 1
        self.buckets[bisect.bisect_left(BUCKET_BOUNDS_MS, duration_ms)] += 1


class StatsAccumulator:
    """This process's counters since the last flush, keyed by (pipeline id, step name or "")."""

    def __init__(self) -> None:
        self._tallies: dict[tuple[int, str], _Tally] = {}
        self._lock = threading.Lock()
        self.last_flush = time.monotonic()

    def _tally(self, key: tuple[int, str]) -> _Tally:
        tally = self._tallies.get(key)
        if tally is None:
            tally = self._tallies[key] = _Tally()
        return tally

    def record(self, pipeline_id: int, slug: str, result: RunResult) -> None:
        """Count one packet's run (pipeline totals and every step it reached)."""
        status = result.status
        with self._lock:
            total = self._tally((pipeline_id, ""))
            total.received += 1
            total.observe(result.duration_ms)
            outcome = {SUCCEEDED: "sent", DROPPED: "dropped", FAILED: "errors"}[status]
            setattr(total, outcome, getattr(total, outcome) + 1)
            last = len(result.log) - 1
            for index, item in enumerate(result.log):
                step, ran, seconds, _, kind = item[:5]
                tally = self._tally((pipeline_id, step))
                tally.received += 1
                if kind == "skipped":
                    tally.skipped += 1
                elif kind == "dropped":
                    tally.dropped += 1
                elif kind == "error":
                    tally.errors += 1
                if kind in ("ok", "skipped") or (kind == "error" and (index < last or status != FAILED)):
                    tally.sent += 1
                if ran:
                    tally.observe(seconds * 1000)

    def drain(self) -> dict[tuple[int, str], _Tally]:
        with self._lock:
            tallies, self._tallies = self._tallies, {}
            self.last_flush = time.monotonic()
        return tallies

    def discard(self, pipeline_id: int) -> None:
        """Forget one pipeline's unflushed counters (it was deleted)."""
        with self._lock:
            for key in [k for k in self._tallies if k[0] == pipeline_id]:
                del self._tallies[key]

    def pending(self, pipeline_id: int) -> dict[str, _Tally]:
        with self._lock:
            return {step: t for (pid, step), t in self._tallies.items() if pid == pipeline_id}


accumulator = StatsAccumulator()


def stats_flush(*, force: bool = False) -> int:
    """Fold this process's counters into `StepStats` when due (or `force`); returns rows touched."""
    from pipelines.models import Pipeline, StepStats

    if not force and time.monotonic() - accumulator.last_flush < stats_flush_seconds():
        return 0
    tallies = accumulator.drain()
    if not tallies:
        return 0
    ids = {pid for pid, _ in tallies}
    with transaction.atomic():
        alive = set(Pipeline.objects.filter(pk__in=ids).values_list("pk", flat=True))
        rows = {(r.pipeline_id, r.step): r for r in StepStats.objects.select_for_update().filter(pipeline_id__in=alive)}
        changed = []
        for (pid, step), tally in tallies.items():
            if pid not in alive:
                continue
            row = rows.get((pid, step))
            if row is None:
                row, _ = StepStats.objects.select_for_update().get_or_create(pipeline_id=pid, step=step)
            for name in COUNTERS:
                setattr(row, name, getattr(row, name) + getattr(tally, name))
            row.latency_sum_ms += tally.latency_sum_ms
            row.latency_count += tally.latency_count
            stored = list(row.latency_buckets or []) + [0] * (len(tally.buckets) - len(row.latency_buckets or []))
            row.latency_buckets = [a + b for a, b in zip(stored, tally.buckets, strict=False)]
            changed.append(row)
        if changed:
            StepStats.objects.bulk_update(
                changed, [*COUNTERS, "latency_sum_ms", "latency_count", "latency_buckets", "updated_at"]
            )
    return len(changed)


def stats_flush_quietly(*, force: bool = False) -> None:
    """Flush, logging instead of raising: a stats hiccup must never fail a run."""
    try:
        stats_flush(force=force)
    except Exception:  # noqa: BLE001 - counters are best effort; the packets were processed
        logger.warning("Could not flush pipeline stats", exc_info=True)


def summarize(
    received: int,
    sent: int,
    dropped: int,
    errors: int,
    skipped: int,
    latency_sum_ms: float,
    latency_count: int,
    buckets: list[int],
) -> dict[str, Any]:
    """A stats row as the API shows it: counters, mean and estimated percentiles (from buckets)."""

    def percentile(q: float) -> float | None:
        if not latency_count:
            return None
        target, seen = q * latency_count, 0
        for bound, count in zip([*BUCKET_BOUNDS_MS, None], buckets, strict=False):
            seen += count
            if seen >= target:
                return bound if bound is not None else BUCKET_BOUNDS_MS[-1]
        return BUCKET_BOUNDS_MS[-1]

    cumulative, running = {}, 0
    for bound, count in zip([*BUCKET_BOUNDS_MS, None], buckets, strict=False):
        running += count
        cumulative["+Inf" if bound is None else f"{bound:g}"] = running
    return {
        "received": received,
        "sent": sent,
        "dropped": dropped,
        "errors": errors,
        "skipped": skipped,
        "latency_ms": {
            "count": latency_count,
            "mean": round(latency_sum_ms / latency_count, 4) if latency_count else None,
            "p50_le": percentile(0.5),
            "p99_le": percentile(0.99),
            "buckets_le_ms": cumulative,
        },
    }
