"""Prometheus metrics for pipelines.

Packet and step counters and latencies are read at scrape time from the `StepStats` rows that every
process folds its in-memory counts into (see `pipelines.stats`), so /metrics shows totals across all web
processes, workers and hosts without a Prometheus update per packet. Values lag by at most
`PIPELINE_STATS_FLUSH_SECONDS`. Delivery attempts are rare and counted directly.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import Counter
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

DELIVERIES = Counter(
    "controlplane_pipeline_deliveries_total", "Delivery attempts to services by outcome.", ["pipeline", "outcome"]
)
OUTCOMES = ("received", "sent", "dropped", "errors", "skipped")


class StepStatsCollector(Collector):
    """Pipeline and step counters and latency histograms from the database, at scrape time."""

    def collect(self) -> Iterable[Any]:
        from pipelines.stats import BUCKET_BOUNDS_MS, stats_flush_quietly

        try:
            stats_flush_quietly(force=True)
            rows = _rows()
        except Exception:  # noqa: BLE001 - a database hiccup must not break the whole /metrics page
            return []
        packets = CounterMetricFamily(
            "controlplane_pipeline_packets", "Packets by pipeline and outcome.", labels=["pipeline", "outcome"]
        )
        steps = CounterMetricFamily(
            "controlplane_pipeline_step_packets",
            "Packets by pipeline step and outcome.",
            labels=["pipeline", "step", "outcome"],
        )
        run_latency = HistogramMetricFamily(
            "controlplane_pipeline_run_duration_seconds",
            "Time to run one packet through a pipeline.",
            labels=["pipeline"],
        )
        step_latency = HistogramMetricFamily(
            "controlplane_pipeline_step_duration_seconds",
            "Time one step took on one packet.",
            labels=["pipeline", "step"],
        )
        for slug, step, counts, latency_sum_ms, buckets in rows:
            cumulative, running = [], 0
            for bound, count in zip(
                [*BUCKET_BOUNDS_MS, None], buckets or [0] * (len(BUCKET_BOUNDS_MS) + 1), strict=False
            ):
                running += count
                cumulative.append(("+Inf" if bound is None else repr(bound / 1000), running))
            if step:
                for outcome in OUTCOMES:
                    steps.add_metric([slug, step, outcome], counts[outcome])
                step_latency.add_metric([slug, step], cumulative, latency_sum_ms / 1000)
            else:
                for outcome in OUTCOMES[:4]:
                    packets.add_metric([slug, outcome], counts[outcome])
                run_latency.add_metric([slug], cumulative, latency_sum_ms / 1000)
        return [packets, steps, run_latency, step_latency]


def _rows() -> list[tuple[str, str, dict[str, int], float, list[int]]]:
    from pipelines.models import StepStats

    return [
        (
            row.pipeline.slug,
            row.step,
            {name: getattr(row, name) for name in OUTCOMES},
            row.latency_sum_ms,
            row.latency_buckets,
        )
        for row in StepStats.objects.select_related("pipeline").order_by("pipeline__slug", "step")
    ]


STEP_STATS_COLLECTOR = StepStatsCollector()
