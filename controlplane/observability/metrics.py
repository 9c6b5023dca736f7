"""Prometheus metrics shared by the whole project, multiprocess-safe under gunicorn.

When `PROMETHEUS_MULTIPROC_DIR` is set (serve sets it to `<var>/prometheus` in both modes, for every
child) each process — web and watch servers, every Celery pool process, beat — writes its samples to
files there and `/metrics` merges them, so probe counters recorded by the workers appear on the web's
`/metrics`; without it (a lone `runserver`, tests) the default in-process registry is used. Apps
define their metrics with the helpers below and may register scrape-time collectors (values read from the
database when scraped, such as checks by status) with `register_scrape_collector`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "controlplane_http_requests_total",
    "HTTP requests by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "controlplane_http_request_duration_seconds",
    "HTTP request latency by route template.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)

_scrape_collectors: list[Collector] = []


def register_scrape_collector(collector: Collector) -> None:
    """Add a collector evaluated at scrape time (works in single- and multi-process mode)."""
    if collector not in _scrape_collectors:
        _scrape_collectors.append(collector)


def multiprocess_enabled() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def render_metrics() -> tuple[bytes, str]:
    """The exposition text for every metric, merged across processes when in multiprocess mode."""
    if multiprocess_enabled():
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        registry.register(_RegistryProxy(REGISTRY))
    for collector in _scrape_collectors:
        registry.register(collector)
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _RegistryProxy(Collector):
    """Exposes the default registry inside a scrape registry that also holds scrape-time collectors."""

    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterable:
        return self.source.collect()
