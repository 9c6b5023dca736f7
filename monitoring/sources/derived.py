"""What the series API can read for each series kind: metric name -> how it is derived from stored points."""

from __future__ import annotations

from monitoring.points import Agg, quantile, ratio
from monitoring.sources.base import DerivedMetric

STATUSES = ("passing", "warning", "critical", "unknown_result")


def _time_in(label: str):  # type: ignore[no-untyped-def]
    return lambda agg, _seconds: agg.breakdown.get(label, 0.0)


def _unknown(agg: Agg, seconds: float) -> float:
    return max(0.0, seconds - sum(agg.breakdown.values()))


def _uptime(agg: Agg, seconds: float) -> float | None:
    return ratio(agg.breakdown.get("passing", 0.0), seconds - agg.breakdown.get("maintenance", 0.0))


def _quantile(q: float):  # type: ignore[no-untyped-def]
    return lambda agg, _seconds: quantile(agg.histogram, q)


def _label(label: str):  # type: ignore[no-untyped-def]
    return lambda agg, _seconds: agg.breakdown.get(label, 0.0)


HEALTH = {
    "results": DerivedMetric("status", lambda agg, _s: float(agg.count), "results"),
    "success_ratio": DerivedMetric("status", lambda agg, _s: ratio(agg.total, agg.count), "ratio"),
    "latency_p50": DerivedMetric("status", _quantile(0.5), "ms"),
    "latency_p95": DerivedMetric("status", _quantile(0.95), "ms"),
    "latency_p99": DerivedMetric("status", _quantile(0.99), "ms"),
    "latency_max": DerivedMetric("status", lambda agg, _s: agg.max, "ms"),
    "uptime": DerivedMetric("status", _uptime, "ratio"),
    "time_passing": DerivedMetric("status", _time_in("passing"), "s"),
    "time_warning": DerivedMetric("status", _time_in("warning"), "s"),
    "time_critical": DerivedMetric("status", _time_in("critical"), "s"),
    "time_maintenance": DerivedMetric("status", _time_in("maintenance"), "s"),
    "time_unknown": DerivedMetric("status", _unknown, "s"),
}
ROUTE = {
    "requests": DerivedMetric("requests", lambda agg, _s: float(agg.count), "requests"),
    "errors_4xx": DerivedMetric("requests", _label("4xx"), "requests"),
    "errors_5xx": DerivedMetric("requests", _label("5xx"), "requests"),
    "error_ratio": DerivedMetric("requests", lambda agg, _s: ratio(agg.breakdown.get("5xx", 0.0), agg.count), "ratio"),
    "latency_p50": DerivedMetric("requests", _quantile(0.5), "ms"),
    "latency_p95": DerivedMetric("requests", _quantile(0.95), "ms"),
    "latency_mean": DerivedMetric("requests", lambda agg, _s: ratio(agg.total, agg.count), "ms"),
}
PACKETS = {
    "packets": DerivedMetric("packets", lambda agg, _s: float(agg.count), "packets"),
    "sent": DerivedMetric("packets", _label("sent"), "packets"),
    "errors": DerivedMetric("packets", _label("errors"), "packets"),
    "drops": DerivedMetric("packets", _label("dropped"), "packets"),
    "latency_p95": DerivedMetric("packets", _quantile(0.95), "ms"),
}
NAMESPACE = {
    "revisions": DerivedMetric("changes", _label("revisions"), "revisions"),
    "source_failures": DerivedMetric("changes", _label("source_failures"), "failures"),
    # Refused change sets (validation, stale compare-and-swap, authorization), by reason too.
    "rejected_writes": DerivedMetric("rejected_writes", lambda agg, _s: float(agg.count), "writes"),
    "rejected_invalid": DerivedMetric("rejected_writes", _label("invalid"), "writes"),
    "rejected_conflicts": DerivedMetric("rejected_writes", _label("conflict"), "writes"),
    "rejected_forbidden": DerivedMetric("rejected_writes", _label("forbidden"), "writes"),
}
DELIVERY = {
    "sent": DerivedMetric("deliveries", _label("sent"), "deliveries"),
    "failed": DerivedMetric("deliveries", _label("failed"), "deliveries"),
    "retried": DerivedMetric("deliveries", _label("retried"), "deliveries"),
}
GAUGE = {
    "queue_length": DerivedMetric("queue_length", lambda agg, _s: ratio(agg.total, agg.count), "messages"),
    "queue_length_max": DerivedMetric("queue_length", lambda agg, _s: agg.max, "messages"),
    "dispatch_lag_ms": DerivedMetric("dispatch_lag", lambda agg, _s: ratio(agg.total, agg.count), "ms"),
    "dispatch_lag_max_ms": DerivedMetric("dispatch_lag", lambda agg, _s: agg.max, "ms"),
}

# kind -> metric name -> how to read it
DERIVED: dict[str, dict[str, DerivedMetric]] = {
    "check": HEALTH,
    "instance": HEALTH,
    "service": HEALTH,
    "route": ROUTE,
    "pipeline": PACKETS,
    "step": PACKETS,
    "namespace": NAMESPACE,
    "delivery": DELIVERY,
    "celery": GAUGE,
}
