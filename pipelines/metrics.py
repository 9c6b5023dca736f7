"""Prometheus metrics for pipelines (on /metrics), per pipeline and per step.

Label children are cached so the per-packet cost is a few in-memory increments (no database write).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from prometheus_client import Counter, Histogram

from controlplane.observability.metrics import LATENCY_BUCKETS

PIPELINE_PACKETS = Counter(
    "controlplane_pipeline_packets_total",
    "Packets by pipeline and outcome (received, sent, dropped, errors).",
    ["pipeline", "outcome"],
)
STEP_PACKETS = Counter(
    "controlplane_pipeline_step_packets_total",
    "Packets by pipeline step and outcome (received, sent, dropped, errors, skipped).",
    ["pipeline", "step", "outcome"],
)
PIPELINE_LATENCY = Histogram(
    "controlplane_pipeline_run_duration_seconds",
    "Time to run one packet through a pipeline.",
    ["pipeline"],
    buckets=LATENCY_BUCKETS,
)
STEP_LATENCY = Histogram(
    "controlplane_pipeline_step_duration_seconds",
    "Time one step took on one packet.",
    ["pipeline", "step"],
    buckets=LATENCY_BUCKETS,
)
DELIVERIES = Counter(
    "controlplane_pipeline_deliveries_total", "Delivery attempts to services by outcome.", ["pipeline", "outcome"]
)


@lru_cache(maxsize=4096)
def pipeline_counter(pipeline: str, outcome: str) -> Any:
    return PIPELINE_PACKETS.labels(pipeline, outcome)


@lru_cache(maxsize=16384)
def step_counter(pipeline: str, step: str, outcome: str) -> Any:
    return STEP_PACKETS.labels(pipeline, step, outcome)


@lru_cache(maxsize=4096)
def pipeline_latency(pipeline: str) -> Any:
    return PIPELINE_LATENCY.labels(pipeline)


@lru_cache(maxsize=16384)
def step_latency(pipeline: str, step: str) -> Any:
    return STEP_LATENCY.labels(pipeline, step)
