"""Per-route request metrics aggregated in process memory, folded into the metric store every few seconds.

The tracing middleware calls `record` for every request (a few additions under a lock, no I/O). A daemon
thread per process (started by the first `record` in it, so after a server's fork) hands the drained
tallies to the flusher the monitoring app registers at most every MONITORING_REQUEST_METRICS_FLUSH_SECONDS,
and once more at exit. So no request writes the database or waits for a write (a flush on the request
path, after the response, raised the platform benchmark's p99 from 81 to 132 ms), and the control plane
does not import monitoring (which imports it). Switched off with MONITORING_REQUEST_METRICS=false.
"""

from __future__ import annotations

import atexit
import bisect
import logging
import os
import threading
import time
from collections.abc import Callable

from django.conf import settings

logger = logging.getLogger("controlplane.requestmetrics")
# Latency histogram bounds in ms, shared with monitoring's points (a superset of LATENCY_BUCKETS in ms).
HISTOGRAM_BOUNDS_MS: tuple[float, ...] = (
    1, 2.5, 5, 10, 25, 50, 75, 100, 150, 250, 500, 750, 1000, 1500, 2500, 5000, 10000, 30000,
)  # fmt: skip
# Methods outside this set are counted as OTHER: the label set stays bounded whatever clients send.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RouteTally:
    """Requests of one (method, route, minute) since the last flush."""

    __slots__ = ("count", "sum_ms", "min_ms", "max_ms", "histogram", "client_errors", "server_errors")

    def __init__(self) -> None:
        self.count = 0
        self.sum_ms = 0.0
        self.min_ms = float("inf")
        self.max_ms = 0.0
        self.histogram = [0] * (len(HISTOGRAM_BOUNDS_MS) + 1)
        self.client_errors = 0
        self.server_errors = 0


TallyKey = tuple[str, str, int]  # (method, route template, minute since the epoch)
Flusher = Callable[[dict[TallyKey, RouteTally]], object]


class RequestMetrics:
    """This process's tallies; thread-safe (gthread workers, ASGI thread pools)."""

    def __init__(self) -> None:
        self._tallies: dict[TallyKey, RouteTally] = {}
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self.last_flush = time.monotonic()
        self.flusher: Flusher | None = None
        self._thread_pid = 0
        # Checked on every request instead of `os.getpid()`, a system call (1.5 µs here) per request.
        self._thread_started = False
        os.register_at_fork(after_in_child=self._forget_thread)

    def record(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one request (its minute is taken from the wall clock now)."""
        if not self._thread_started:  # reset in a forked child, which needs its own flush thread
            self._start_thread()
        ms = seconds * 1000
        key = (method if method in METHODS else "OTHER", route, int(time.time() // 60))
        with self._lock:
            tally = self._tallies.get(key)
            if tally is None:
                tally = self._tallies[key] = RouteTally()
            tally.count += 1
            tally.sum_ms += ms
            if ms < tally.min_ms:
                tally.min_ms = ms
            if ms > tally.max_ms:
                tally.max_ms = ms
            tally.histogram[bisect.bisect_left(HISTOGRAM_BOUNDS_MS, ms)] += 1
            if status >= 500:
                tally.server_errors += 1
            elif status >= 400:
                tally.client_errors += 1

    def due(self) -> bool:
        interval = float(getattr(settings, "MONITORING_REQUEST_METRICS_FLUSH_SECONDS", 5))
        return self.flusher is not None and time.monotonic() - self.last_flush >= interval

    def drain(self) -> dict[TallyKey, RouteTally]:
        with self._lock:
            tallies, self._tallies = self._tallies, {}
            self.last_flush = time.monotonic()
        return tallies

    def flush(self) -> int:
        """Hand everything counted so far to the flusher; returns tallies handed over (0 without a flusher)."""
        if self.flusher is None or not self._flushing.acquire(blocking=False):
            return 0
        try:
            tallies = self.drain()
            if tallies:
                self.flusher(tallies)
            return len(tallies)
        except Exception:  # noqa: BLE001 - metrics are best effort; the requests were served
            logger.warning("Could not flush request metrics", exc_info=True)
            return 0
        finally:
            self._flushing.release()

    def _forget_thread(self) -> None:
        self._thread_started = False

    def _start_thread(self) -> None:
        with self._lock:
            if self._thread_pid == os.getpid():
                self._thread_started = True
                return
            self._thread_pid = os.getpid()
            self._thread_started = True
        threading.Thread(target=self._flush_loop, name="request-metrics-flush", daemon=True).start()

    def _flush_loop(self) -> None:
        """Wake twice a second; flush when due, then close this thread's database connection (one connect
        per flush, instead of an idle session per process that nothing else would ever close)."""
        from django.db import connection

        while True:
            time.sleep(0.5)
            if enabled() and self.due():
                try:
                    self.flush()
                finally:
                    connection.close()


request_metrics = RequestMetrics()


def enabled() -> bool:
    """MONITORING_REQUEST_METRICS (default on)."""
    return bool(getattr(settings, "MONITORING_REQUEST_METRICS", True))


def set_flusher(flusher: Flusher) -> None:
    """Register the function that stores drained tallies (the monitoring app does, in its `ready`)."""
    request_metrics.flusher = flusher


@atexit.register
def _flush_at_exit() -> None:
    if request_metrics.flusher is not None:
        request_metrics.flush()
