"""The monitoring app's settings, each read with a default so the app works before the project sets them."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from controlplane.observability.requestmetrics import HISTOGRAM_BOUNDS_MS

DEFAULTS: dict[str, Any] = {
    # Retention of roll-up points by level (beat, `monitoring.tasks.prune_points`). Raw check results are
    # the registry's (REGISTRY_RESULT_RETENTION_*).
    "MONITORING_MINUTE_RETENTION_HOURS": 48,
    "MONITORING_HOUR_RETENTION_DAYS": 90,
    "MONITORING_DAY_RETENTION_DAYS": 730,
    # A minute is rolled up this many seconds after it ends, so results still being written are in it.
    "MONITORING_ROLLUP_SETTLE_SECONDS": 15,
    # One roll-up run stops after this many seconds of work (the next run continues from the watermark):
    # a catch-up after days of downtime never runs into the housekeeping queue's time limit.
    # 30 s: during a catch-up the housekeeping worker stays free for the other tasks between ticks.
    "MONITORING_ROLLUP_BUDGET_SECONDS": 30,
    # Minutes rolled up per transaction (memory and lock time bounded during a catch-up).
    "MONITORING_ROLLUP_CHUNK_MINUTES": 10,
    # How far back a run may start when there is no watermark yet (first run).
    "MONITORING_ROLLUP_FIRST_RUN_HOURS": 24,
    # How often a process folds its per-route request counters into minute points.
    "MONITORING_REQUEST_METRICS_FLUSH_SECONDS": 5,
    # Alerting (monitoring/alerting): total deadline, attempts and first backoff of one notification
    # (the delivery engine doubles the backoff up to DELIVERY_BACKOFF_CAP_SECONDS).
    "MONITORING_NOTIFICATION_TIMEOUT_SECONDS": 10,
    "MONITORING_NOTIFICATION_MAX_ATTEMPTS": 8,
    "MONITORING_NOTIFICATION_BACKOFF_BASE_SECONDS": 10,
    # Threshold rules on stored series read the minute points of this many seconds back.
    "MONITORING_ALERT_LOOKBACK_SECONDS": 300,
    # How long one worker holds a rule while evaluating it (a dead worker's claim runs out after it).
    "MONITORING_ALERT_CLAIM_SECONDS": 60,
    # Stored alert transitions and settled notifications are kept this long (beat, hourly).
    "MONITORING_ALERT_HISTORY_DAYS": 30,
}

# Latency histogram bounds (ms), the ones the request-metrics aggregator counts with: a superset of the
# Prometheus bounds the other apps use, so their histograms map onto these without losing bucket edges.
LATENCY_BOUNDS_MS: tuple[float, ...] = HISTOGRAM_BOUNDS_MS


def get(name: str) -> Any:
    """The setting `name`, or monitoring's default for it."""
    return getattr(settings, name, DEFAULTS[name])
