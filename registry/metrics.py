"""Prometheus metrics for probes and the dispatcher, plus checks by status read at scrape time."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

PROBES_RUN = Counter("registry_probes_total", "Probes run, by kind and result.", ["kind", "result"])
PROBE_LATENCY = Histogram(
    "registry_probe_duration_seconds",
    "Probe latency by kind.",
    ["kind"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
DISPATCH_LAG = Histogram(
    "registry_dispatch_lag_seconds",
    "How late a probe started: its start time minus the check's next_run_at.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0),
)
CHECKS_CLAIMED = Counter("registry_checks_claimed_total", "Checks claimed by the dispatcher.")


class ChecksByStatusCollector(Collector):
    """`registry_checks{status=...}` counted from the database when /metrics is scraped."""

    def collect(self) -> Iterable[GaugeMetricFamily]:
        from django.db.models import Count

        from registry.models import Check, CheckStatus

        family = GaugeMetricFamily("registry_checks", "Checks by current status.", labels=["status"])
        counts = dict.fromkeys(CheckStatus.values, 0)
        try:
            for row in Check.objects.values("status").annotate(n=Count("id")):
                counts[row["status"]] = row["n"]
        except Exception:  # noqa: BLE001 - a scrape must not fail because the database is briefly away
            return
        for status, value in counts.items():
            family.add_metric([status], value)
        yield family
