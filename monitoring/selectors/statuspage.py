"""Reads for the public status page and badges: public services only, and only what a customer may see.

What leaves this module is an allow-list built field by field (`PublicService`, `PublicIncident`, …):
display name, description the admin wrote for the page, status word, uptime shares, maintenance names and
times, incidents. Never addresses, ports, instance ids, tags, metadata, check names or output, config,
or anything about a service not marked public. A fixed number of queries whatever the fleet size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Prefetch, Q
from django.utils import timezone

from monitoring.models import Incident, IncidentStatus, MaintenanceOrigin, MaintenanceScope, StatusPageService
from monitoring.points import ratio
from monitoring.selectors.dashboard import service_status, services_ranked
from monitoring.selectors.dashboard_history import DaySegment, uptime_windows
from monitoring.selectors.maintenance import windows_between
from monitoring.selectors.uptime_days import DayBars, day_bars

DAYS = 90
MAINTENANCE_HORIZON = timedelta(days=14)
INCIDENT_HISTORY = timedelta(days=30)
# A registry-flag window is named after an instance; the page shows this instead.
FLAG_WINDOW_NAME = "Scheduled maintenance"
PUBLIC_WORD = {
    "passing": "passing",
    "warning": "degraded",
    "critical": "down",
    "maintenance": "maintenance",
    "unknown": "unknown",
}


@dataclass
class PublicService:
    """One public service as the page shows it; its 90 days are `bars` of `target` (numbers only)."""

    key: str  # the service's name, as in badge URLs
    name: str
    description: str
    status: str
    bars: DayBars
    target: str
    uptime_90d: float | None

    @property
    def days(self) -> list[DaySegment]:
        return self.bars.segments(self.target)


@dataclass
class PublicMaintenance:
    name: str
    starts_at: datetime
    ends_at: datetime
    active: bool
    services: list[str]  # display names of public services covered; empty = everything


@dataclass
class PublicUpdate:
    status: str
    message: str
    created_at: datetime


@dataclass
class PublicIncident:
    title: str
    status: str
    started_at: datetime
    resolved_at: datetime | None
    services: list[str]
    updates: list[PublicUpdate] = field(default_factory=list)


def _public_rows() -> list[StatusPageService]:
    return list(
        StatusPageService.objects.filter(public=True).select_related("service").order_by("position", "service__name")
    )


def public_services(*, now: datetime | None = None) -> list[PublicService]:
    """Every public service with its status, 90 one-day segments and 90-day uptime (five queries)."""
    return _public_services(_public_rows(), now or timezone.now())


def _public_services(rows: list[StatusPageService], now: datetime) -> list[PublicService]:
    if not rows:
        return []
    ranked = {s.pk: s for s in services_ranked().filter(pk__in=[r.service_id for r in rows]).order_by()}
    bars = day_bars(kind="service", targets=[str(r.service_id) for r in rows], days=DAYS, now=now)
    out = []
    for row in rows:
        target = str(row.service_id)
        # known: any time passing, degraded or down; else the 90 days say nothing (no data is not 0 %).
        passing, covered, known = bars.totals(target)
        out.append(
            PublicService(
                key=row.service.name,
                name=row.display_name or row.service.display_name or row.service.name,
                description=row.description,
                status=PUBLIC_WORD.get(service_status(ranked[row.service_id]), "unknown"),
                bars=bars,
                target=target,
                uptime_90d=ratio(passing, covered) if known else None,
            )
        )
    return out


def public_maintenance(*, names: dict[int, str], now: datetime | None = None) -> list[PublicMaintenance]:
    """Active and upcoming (14 days) windows covering everything or a public service; `names`: service id -> shown name."""
    now = now or timezone.now()
    found = []
    for window, (low, high) in windows_between(now, now + MAINTENANCE_HORIZON):
        if window.scope == MaintenanceScope.EVERYTHING:
            covered: list[str] = []
        else:
            service_id = window.service_id or (window.instance.service_id if window.instance_id else None)
            if service_id not in names:
                continue  # a private service's maintenance says nothing on the public page
            covered = [names[service_id]]
        name = FLAG_WINDOW_NAME if window.origin == MaintenanceOrigin.REGISTRY_FLAG else window.name
        found.append(PublicMaintenance(name, low, high, low <= now, covered))
    return found


def public_incidents(
    *, public_ids: set[int], names: dict[int, str], now: datetime | None = None
) -> list[PublicIncident]:
    """Open incidents and those resolved in the last 30 days, on public services (or on no service at all)."""
    now = now or timezone.now()
    queryset = (
        Incident.objects.filter(Q(resolved_at__isnull=True) | Q(resolved_at__gte=now - INCIDENT_HISTORY))
        .filter(Q(services__isnull=True) | Q(services__in=public_ids))
        .distinct()
        .prefetch_related(Prefetch("updates"), "services")
        .order_by("-started_at", "-id")[:50]
    )
    out = []
    for incident in queryset:
        linked = [s.pk for s in incident.services.all()]
        if linked and not any(pk in public_ids for pk in linked):
            continue
        out.append(
            PublicIncident(
                title=incident.title,
                status=incident.status,
                started_at=incident.started_at,
                resolved_at=incident.resolved_at,
                services=[names[pk] for pk in linked if pk in names],
                updates=[PublicUpdate(u.status, u.message, u.created_at) for u in incident.updates.all()],
            )
        )
    return out


def status_page(*, now: datetime | None = None) -> dict:
    """The whole public page's data."""
    now = now or timezone.now()
    public = _public_rows()
    services = _public_services(public, now)
    rows = {r.service.name: r.service_id for r in public}
    names = {rows[s.key]: s.name for s in services}
    incidents = public_incidents(public_ids=set(names), names=names, now=now)
    statuses = {s.status for s in services}
    overall = "down" if "down" in statuses else "degraded" if statuses & {"degraded", "unknown"} else "passing"
    return {
        "services": services,
        "maintenance": public_maintenance(names=names, now=now),
        "open_incidents": [i for i in incidents if i.status != IncidentStatus.RESOLVED],
        "past_incidents": [i for i in incidents if i.status == IncidentStatus.RESOLVED],
        "overall": overall if services else "unknown",
        "generated_at": now,
    }


@dataclass
class BadgeData:
    name: str
    status: str
    uptime_24h: float | None
    uptime_30d: float | None


def badge_data(*, key: str, now: datetime | None = None) -> BadgeData | None:
    """A public service's badge figures, or None for a service that is missing OR private (indistinguishable)."""
    now = now or timezone.now()
    row = StatusPageService.objects.filter(public=True, service__name=key).select_related("service").first()
    if row is None:
        return None
    service = services_ranked().filter(pk=row.service_id).first()
    windows = uptime_windows(kind="service", targets=[str(row.service_id)], now=now, windows=("24h", "30d"))[
        str(row.service_id)
    ]
    return BadgeData(
        name=row.display_name or row.service.display_name or row.service.name,
        status=PUBLIC_WORD.get(service_status(service), "unknown") if service else "unknown",
        uptime_24h=windows[0].uptime,
        uptime_30d=windows[1].uptime,
    )
