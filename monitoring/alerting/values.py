"""The metrics a rule can watch, each read for many targets at once (one query per rule evaluation).

| metric | service / instance / check | pipeline | route | namespace | system |
|---|---|---|---|---|---|
| status | registry status now (passing 0, warning/unknown 1, critical 2) | – | – | – | – |
| latency_p95 | check results (ms) | packets (ms) | requests (ms) | – | – |
| error_rate | 1 - passing share | errors / packets | 5xx / requests | – | – |
| success_ratio | passing share | 1 - errors / packets | 1 - 5xx / requests | – | – |
| throughput | results / s | packets / s | requests / s | – | – |
| queue_lag | – | – | – | – | worst Celery dispatch lag (ms); target = queue |
| source_failing | – | – | – | failing sources now | failing sources now |

Series values come from minute points of the last MONITORING_ALERT_LOOKBACK_SECONDS (the roll-up writes
a minute shortly after it ends, so they lag by about a minute); no data = no value = the condition is false.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from monitoring import conf
from monitoring.alerting.targets import STATUS_VALUE, Target
from monitoring.points import Agg, quantile, ratio

STORED = {"check": "status", "instance": "status", "service": "status", "pipeline": "packets", "route": "requests"}
HEALTH = ("check", "instance", "service")


def _errors(agg: Agg, kind: str) -> float | None:
    if kind in HEALTH:
        passing = ratio(agg.total, agg.count)
        return None if passing is None else 1.0 - passing
    label = "errors" if kind == "pipeline" else "5xx"
    return ratio(agg.breakdown.get(label, 0.0), agg.count)


def _success(agg: Agg, kind: str) -> float | None:
    errors = _errors(agg, kind)
    return None if errors is None else 1.0 - errors


SERIES_METRICS: dict[str, Callable[[Agg, str, float], float | None]] = {
    "latency_p95": lambda agg, _kind, _seconds: quantile(agg.histogram, 0.95),
    "error_rate": lambda agg, kind, _seconds: _errors(agg, kind),
    "success_ratio": lambda agg, kind, _seconds: _success(agg, kind),
    "throughput": lambda agg, _kind, seconds: agg.count / seconds if seconds else None,
}
METRICS = ("status", *SERIES_METRICS, "queue_lag", "source_failing")

# Which metrics each target kind supports (validation refuses the others with a field error).
SUPPORTED: dict[str, tuple[str, ...]] = {
    "service": ("status", *SERIES_METRICS),
    "instance": ("status", *SERIES_METRICS),
    "check": ("status", *SERIES_METRICS),
    "labels": ("status", *SERIES_METRICS),
    "pipeline": tuple(SERIES_METRICS),
    "route": tuple(SERIES_METRICS),
    "namespace": ("source_failing",),
    "system": ("queue_lag", "source_failing"),
}


def _merged_points(targets: list[Target], *, stored_kind: str, now: datetime) -> dict[str, Agg]:
    from monitoring.models import MetricPoint

    lookback = int(conf.get("MONITORING_ALERT_LOOKBACK_SECONDS"))
    wanted = {t.series[1] for t in targets if t.series}
    merged: dict[str, Agg] = {}
    if not wanted:
        return merged
    rows = MetricPoint.objects.filter(
        resolution=60,
        bucket__gte=now - timedelta(seconds=lookback),
        bucket__lt=now,
        series__kind=stored_kind,
        series__metric=STORED[stored_kind],
        series__target__in=sorted(wanted),
    ).values_list("series__target", "count", "total", "min", "max", "histogram", "breakdown")
    for target, *fields in rows:
        merged.setdefault(target, Agg()).merge(Agg.from_row(*fields))
    return merged


def target_values(metric: str, targets: list[Target], *, now: datetime) -> dict[str, float | None]:
    """target key -> current value of `metric` (None: unknown)."""
    values: dict[str, float | None] = {t.key: None for t in targets}
    if metric == "status":
        for target in targets:
            values[target.key] = STATUS_VALUE.get(target.status or "")
        return values
    if metric in SERIES_METRICS:
        lookback = float(conf.get("MONITORING_ALERT_LOOKBACK_SECONDS"))
        by_kind: dict[str, list[Target]] = {}
        for target in targets:
            if target.series and target.series[0] in STORED:
                by_kind.setdefault(target.series[0], []).append(target)
        for kind, group in by_kind.items():
            merged = _merged_points(group, stored_kind=kind, now=now)
            for target in group:
                agg = merged.get(target.series[1]) if target.series else None
                if agg is not None and agg.count:
                    values[target.key] = SERIES_METRICS[metric](agg, kind, lookback)
        return values
    if metric == "queue_lag":
        for target in targets:
            values[target.key] = _queue_lag(now=now, queue=target.extra.get("queue", ""))
        return values
    if metric == "source_failing":
        from configstore.models import Source

        for target in targets:
            sources = Source.objects.exclude(last_error="")
            if target.labels.get("namespace"):
                sources = sources.filter(namespace__name=target.labels["namespace"])
            values[target.key] = float(sources.count())
        return values
    return values


def _queue_lag(*, now: datetime, queue: str) -> float | None:
    from monitoring.models import MetricPoint

    lookback = int(conf.get("MONITORING_ALERT_LOOKBACK_SECONDS"))
    rows = MetricPoint.objects.filter(
        resolution=60,
        bucket__gte=now - timedelta(seconds=lookback),
        series__kind="celery",
        series__metric="dispatch_lag",
    )
    if queue:
        rows = rows.filter(series__target=queue)
    worst = [high for (high,) in rows.values_list("max") if high is not None]
    return max(worst) if worst else None
