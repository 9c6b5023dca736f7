"""Reads for the operator dashboard: every list is one paginated, searchable query, whatever the fleet size.

Nothing here loops over services with a query inside: a page costs the same number of queries at 100 and
at 10,000 services (tests/monitoring/test_dashboard_queries.py asserts it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.paginator import Page, Paginator
from django.db import connection
from django.db.models import (
    Case,
    Count,
    IntegerField,
    Max,
    Prefetch,
    Q,
    QuerySet,
    Value,
    When,
    prefetch_related_objects,
)
from django.shortcuts import get_object_or_404
from django.utils import timezone

from controlplane.events.models import Event
from monitoring.models import (
    AlertState,
    AlertStatus,
    MetricPoint,
    Resolution,
    SeriesKind,
    Silence,
)
from monitoring.points import Agg, quantile
from monitoring.selectors.dashboard_history import latency_points, series_bins, uptime_windows
from monitoring.selectors.dashboard_maintenance import maintenance_now, maintenance_page  # noqa: F401 - views read them here
from monitoring.selectors.service_ranks import RANKS, STATUS_BY_RANK, RankedServices, worst_per_service_sql
from monitoring.selectors.uptime_days import status_seconds
from registry.models import Check, Instance, InstanceStatus, Service

PAGE_SIZE = 25
MAX_SEARCH = 100  # characters of a search term kept; longer input is cut, not an error
TRANSITION_KINDS = ("check.status_changed", "instance.status_changed")


def clean_search(raw: str | None) -> str:
    """A search term as the lists use it: stripped, bounded, NUL-free (the input boundary refuses NUL too)."""
    return (raw or "").replace("\x00", "").strip()[:MAX_SEARCH]


class _Counted(Paginator):
    """A paginator told its count (counting the annotated, grouped queryset costs as much as sorting it)."""

    def __init__(self, object_list: Any, per_page: int, count: int) -> None:
        super().__init__(object_list, per_page)
        self._known = count

    @property
    def count(self) -> int:  # type: ignore[override]
        return self._known


def paginate(queryset: QuerySet | list, page: Any, per_page: int = PAGE_SIZE, *, count: int | None = None) -> Page:
    """One page of `queryset` (count + slice); a page number out of range or not a number gives the last/first."""
    paginator = Paginator(queryset, per_page) if count is None else _Counted(queryset, per_page, count)
    return paginator.get_page(page)


def services_ranked() -> QuerySet[Service]:
    """Services annotated with instance counts and `rank` (the worst instance status); no instance = unknown."""
    return Service.objects.with_counts().annotate(
        rank=Case(
            When(critical_count__gt=0, then=Value(RANKS["critical"])),
            When(warning_count__gt=0, then=Value(RANKS["warning"])),
            When(unknown_count__gt=0, then=Value(RANKS["unknown"])),
            When(passing_count__gt=0, then=Value(RANKS["passing"])),
            When(maintenance_count__gt=0, then=Value(RANKS["maintenance"])),
            default=Value(RANKS["unknown"]),
            output_field=IntegerField(),
        )
    )


def service_status(service: Service) -> str:
    """The status word for a service annotated by `services_ranked`."""
    return STATUS_BY_RANK.get(getattr(service, "rank", RANKS["unknown"]), "unknown")


def service_statuses(*, names: list[str] | None = None, ids: list[int] | None = None) -> dict[int, dict[str, Any]]:
    """id -> {name, status} for a few services (one query): what a live update carries."""
    queryset = services_ranked()
    if names is not None:
        queryset = queryset.filter(name__in=names)
    if ids is not None:
        queryset = queryset.filter(pk__in=ids)
    return {
        s.pk: {
            "id": s.pk,
            "name": s.name,
            "status": service_status(s),
            "passing": s.passing_count,
            "instances": s.instance_count,
            "critical": s.critical_count,
        }
        for s in queryset.order_by()
    }


def service_page(*, search: str = "", status: str = "", page: Any = 1, total: int | None = None) -> Page:
    """Services, failing first then by name, filtered by a search term and a status (three queries).

    `total`: the number of services, when the caller has counted them already (the overview's counts).
    """
    matching = None
    if search:
        matching = Service.objects.filter(
            Q(name__icontains=search) | Q(display_name__icontains=search) | Q(owner__icontains=search)
        )
    ranked = RankedServices(matching, RANKS[status] if status in RANKS else None)
    count = None  # with a status filter the ranked list counts itself; without, no ranking is needed to count
    if status not in RANKS:
        if matching is not None:
            count = matching.count()
        else:
            count = total if total is not None else Service.objects.count()
    result = paginate(ranked, page, count=count)
    for service in result.object_list:
        service.status_word = service_status(service)
    return result


def check_figures() -> tuple[dict[str, int], datetime | None]:
    """Enabled checks by status, and the newest result among them (one pass over the check table)."""
    rows = list(
        Check.objects.filter(enabled=True)
        .order_by()
        .values_list("status")
        .annotate(n=Count("id"), newest=Max("last_result_at"))
    )
    newest = max((when for _, _, when in rows if when is not None), default=None)
    return {status: n for status, n, _ in rows}, newest


def status_counts(*, checks: dict[str, int] | None = None) -> dict[str, dict[str, int]]:
    """Instances and enabled checks by status, and services by their worst instance (three queries).

    Services: the worst rank per service is a MAX over its instances in one pass over the instance table,
    then counted per rank, and the same pass counts the instances by status; services without an instance
    count as unknown. (EXISTS per service and status took a second at 10,000 services.) `checks`: the
    counts of `check_figures` when the caller has them already.
    """
    every = list(InstanceStatus.values)
    sql, params = worst_per_service_sql(counts=tuple(every))
    quote = connection.ops.quote_name
    sums = ", ".join(f"SUM({quote(f'n_{status}')})" for status in every)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT worst, COUNT(*), {sums} FROM ({sql}) AS per_service GROUP BY worst", params)  # noqa: S608 - ORM SQL
        rows = cursor.fetchall()
    ranked = {rank: n for rank, n, *_ in rows}
    instances = {status: sum(int(row[2 + i] or 0) for row in rows) for i, status in enumerate(every)}
    without_instances = Service.objects.count() - sum(ranked.values())
    services = {STATUS_BY_RANK.get(r, "unknown"): n for r, n in ranked.items()}
    services["unknown"] = services.get("unknown", 0) + max(0, without_instances)
    checks = check_figures()[0] if checks is None else checks
    return {
        "services": {s: services.get(s, 0) for s in every},
        "instances": {s: instances.get(s, 0) for s in every},
        "checks": {s: checks.get(s, 0) for s in every if s != "maintenance"},
    }


def alert_page(*, statuses: tuple[str, ...], search: str = "", page: Any = 1, per_page: int = PAGE_SIZE) -> Page:
    """Alert states in `statuses`, firing before pending, most recent first; searchable by rule or target."""
    queryset = AlertState.objects.filter(status__in=statuses).select_related("rule")
    if search:
        queryset = queryset.filter(
            Q(rule__name__icontains=search) | Q(target_key__icontains=search) | Q(labels__target__icontains=search)
        )
    order = Case(When(status=AlertStatus.FIRING, then=Value(0)), default=Value(1), output_field=IntegerField())
    return paginate(queryset.annotate(order=order).order_by("order", "-active_since", "-id"), page, per_page)


def flapping_page(*, page: Any = 1, per_page: int = 10) -> Page:
    """Alert targets in the flapping state."""
    return paginate(
        AlertState.objects.filter(flapping=True).select_related("rule").order_by("-flapping_since"), page, per_page
    )


def silence_page(*, now: datetime | None = None, search: str = "", page: Any = 1) -> Page:
    """Active and pending silences (not expired), soonest-ending first."""
    now = now or timezone.now()
    queryset = Silence.objects.filter(ends_at__gt=now)
    if search:
        queryset = queryset.filter(Q(author__icontains=search) | Q(comment__icontains=search))
    return paginate(queryset.order_by("ends_at", "id"), page)


def recent_events(
    *, kinds: tuple[str, ...] = (), prefix: str = "", subject_prefix: str = "", limit: int = 10
) -> list[Event]:
    """The latest events of some kinds (or a kind prefix such as `config.`), newest first."""
    queryset = Event.objects.all()
    if kinds:
        queryset = queryset.filter(kind__in=kinds)
    if prefix:
        queryset = queryset.filter(kind__startswith=prefix)
    if subject_prefix:
        queryset = queryset.filter(subject__startswith=subject_prefix)
    return list(queryset.order_by("-id")[:limit])


def event_page(*, search: str = "", page: Any = 1) -> Page:
    """The event log, newest first, searchable by kind or subject."""
    queryset = Event.objects.all()
    if search:
        queryset = queryset.filter(Q(kind__icontains=search) | Q(subject__icontains=search))
    return paginate(queryset.order_by("-id"), page)


def last_event_id() -> int:
    """The newest event's id (0 when there is none): where a live stream starts."""
    return Event.objects.order_by("-id").values_list("id", flat=True).first() or 0


@dataclass
class Rate:
    """Requests (or packets) over a recent window: rate per second, error share, p95 latency."""

    total: float = 0
    errors: float = 0
    per_second: float = 0
    error_ratio: float | None = None
    p95_ms: float | None = None


def _recent(kind: str, metric: str, *, minutes: int, now: datetime) -> Agg:
    """Every series of `kind`'s stored `metric`, merged over the last `minutes` minute points (one query)."""
    rows = MetricPoint.objects.filter(
        series__kind=kind,
        series__metric=metric,
        resolution=Resolution.MINUTE,
        bucket__gte=now - timedelta(minutes=minutes),
        bucket__lt=now,
    ).values_list("count", "total", "min", "max", "histogram", "breakdown")
    merged = Agg()
    for row in rows:
        merged.merge(Agg.from_row(*row))
    return merged


def _rate(agg: Agg, error_label: str, seconds: float) -> Rate:
    errors = agg.breakdown.get(error_label, 0.0)
    return Rate(
        total=agg.count,
        errors=errors,
        per_second=agg.count / seconds,
        error_ratio=errors / agg.count if agg.count else None,
        p95_ms=quantile(agg.histogram, 0.95),
    )


def traffic(*, now: datetime | None = None, minutes: int = 5) -> dict[str, Any]:
    """API requests (rate, 5xx share, p95) and pipeline packets (rate, error share, p95) over the last minutes."""
    now = now or timezone.now()
    seconds = minutes * 60.0
    return {
        "minutes": minutes,
        "api": _rate(_recent(SeriesKind.ROUTE, "requests", minutes=minutes, now=now), "5xx", seconds),
        "pipelines": _rate(_recent(SeriesKind.PIPELINE, "packets", minutes=minutes, now=now), "errors", seconds),
    }


def workers_health(
    *, now: datetime | None = None, checks: tuple[Any, datetime | None] | None = None
) -> list[dict[str, Any]]:
    """Beat and every Celery worker by its heartbeat row, and the probes by the newest check result (two queries;
    one when `checks` gives `check_figures()` already).

    Heartbeats only, no broker ping: pinging the workers takes up to a second, too slow for a page.
    """
    from django.conf import settings

    from controlplane.observability.models import Heartbeat

    now = now or timezone.now()
    beat_limit = float(getattr(settings, "BEAT_HEARTBEAT_MAX_AGE", 30))
    worker_limit = float(getattr(settings, "WORKER_HEARTBEAT_MAX_AGE", 30))
    rows = []
    beats = Heartbeat.objects.filter(Q(component="beat") | Q(component__startswith="worker:")).order_by("component")
    seen_beat = False
    for component, seen in beats.values_list("component", "seen_at")[:50]:
        age = (now - seen).total_seconds()
        limit = beat_limit if component == "beat" else worker_limit
        seen_beat = seen_beat or component == "beat"
        rows.append({"name": component, "age": age, "status": "passing" if age <= limit else "critical"})
    if not seen_beat:
        rows.insert(0, {"name": "beat", "age": None, "status": "critical"})
    probed = (check_figures() if checks is None else checks)[1]
    age = (now - probed).total_seconds() if probed else None
    rows.append(
        {
            "name": "newest check result",
            "age": age,
            "status": "passing" if age is not None and age <= 120 else "unknown",
        }
    )
    return rows


def overview(
    *,
    search: str = "",
    status: str = "",
    page: Any = 1,
    flapping: Any = 1,
    maintenance: Any = 1,
    maintenance_search: str = "",
    now: datetime | None = None,
) -> dict[str, Any]:
    """Everything the overview shows, in a fixed number of queries; `flapping` / `maintenance`: those lists' pages."""
    now = now or timezone.now()
    checks = check_figures()
    counts = status_counts(checks=checks[0])
    return {
        "counts": counts,
        "services": service_page(search=search, status=status, page=page, total=sum(counts["services"].values())),
        "firing": alert_page(statuses=(AlertStatus.FIRING, AlertStatus.PENDING), per_page=10),
        "flapping": flapping_page(page=flapping),
        "maintenance": maintenance_now(now=now, search=maintenance_search, page=maintenance),
        "transitions": recent_events(kinds=TRANSITION_KINDS),
        "events": recent_events(),
        "config_changes": recent_events(prefix="config."),
        "traffic": traffic(now=now),
        "workers": workers_health(now=now, checks=checks),
    }


def instance_page(*, service: Service, search: str = "", page: Any = 1) -> Page:
    """A service's instances by id, each with its checks, searchable by instance id or address (three queries)."""
    queryset = Instance.objects.filter(service=service)
    if search:
        queryset = queryset.filter(Q(instance_id__icontains=search) | Q(address__icontains=search))
    result = paginate(queryset.order_by("instance_id", "id"), page)
    # Checks of this page's instances only (one query), not of every instance of a large service.
    prefetch_related_objects(result.object_list, Prefetch("checks", queryset=Check.objects.order_by("name", "id")))
    return result


def service_detail(*, name: str, search: str = "", page: Any = 1, now: datetime | None = None) -> dict[str, Any]:
    """A service with a page of its instances and checks, latency, uptime windows, 90 day bar, transitions, alerts."""
    now = now or timezone.now()
    service = get_object_or_404(services_ranked(), name=name)
    instances = instance_page(service=service, search=search, page=page)
    target = str(service.pk)
    alerts = (
        AlertState.objects.filter(
            Q(target_key=f"service:{service.pk}")
            | Q(target_key__startswith=f"service:{service.pk}/")
            | Q(labels__service=service.name)
        )
        .exclude(status=AlertStatus.INACTIVE)
        .select_related("rule")
        .order_by("-active_since")[:20]
    )
    return {
        "service": service,
        "status": service_status(service),
        "instances": instances,
        "latency": latency_points(kind=SeriesKind.SERVICE, target=target, start=now - timedelta(hours=24), end=now),
        "uptime": uptime_windows(kind=SeriesKind.SERVICE, targets=[target], now=now)[target],
        "days": status_seconds(kind=SeriesKind.SERVICE, targets=[target], days=90, now=now)[target],
        "transitions": recent_events(kinds=TRANSITION_KINDS, subject_prefix=f"{service.name}/", limit=20),
        "alerts": list(alerts),
    }


def pipeline_page(*, search: str = "", page: Any = 1) -> Page:
    """Pipelines by slug, searchable by slug or name."""
    from pipelines.models import Pipeline

    queryset = Pipeline.objects.annotate(step_count=Count("steps"))
    if search:
        queryset = queryset.filter(Q(slug__icontains=search) | Q(name__icontains=search))
    return paginate(queryset.order_by("slug"), page)


def pipeline_detail(*, slug: str, hours: int = 24, now: datetime | None = None) -> dict[str, Any]:
    """A pipeline's steps with packets, errors, drops and p95 latency per bin over the last `hours` (one points query)."""
    from pipelines.models import Pipeline, StepStats

    now = now or timezone.now()
    pipeline = get_object_or_404(Pipeline, slug=slug)
    steps = list(pipeline.steps.order_by("priority", "id"))
    targets = [f"{pipeline.slug}/{step.name}" for step in steps]
    bins = series_bins(
        kind=SeriesKind.STEP, targets=targets, metric="packets", start=now - timedelta(hours=hours), end=now, bins=48
    )
    totals = {row.step: row for row in StepStats.objects.filter(pipeline=pipeline)}
    rows = []
    for step, target in zip(steps, targets, strict=True):
        series = bins[target]
        rows.append(
            {
                "step": step,
                "bins": series,
                "packets": sum(agg.count for _, agg in series),
                "errors": sum(agg.breakdown.get("errors", 0) for _, agg in series),
                "drops": sum(agg.breakdown.get("dropped", 0) for _, agg in series),
                "stats": totals.get(step.name),
            }
        )
    return {"pipeline": pipeline, "steps": rows, "hours": hours, "overall": totals.get("")}
