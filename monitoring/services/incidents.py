"""Writes of what the public status page shows: which services are public, incidents and their updates.

An incident's `status` and `resolved_at` follow its newest update, so the page (open incidents above,
resolved ones in the 30-day history, selected by `resolved_at`) can never show a resolved incident as open
or an open one as resolved: only these functions change them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from controlplane.events.services import emit
from monitoring.models import Incident, IncidentStatus, IncidentUpdate, StatusPageService
from registry.models import Service

LISTING_FIELDS = ("public", "display_name", "description", "position")


def _listing_data(row: StatusPageService) -> dict[str, Any]:
    return {"service": row.service.name, **{name: getattr(row, name) for name in LISTING_FIELDS}}


@transaction.atomic
def status_listing_save(*, service: Service, actor: str = "system", **fields: Any) -> StatusPageService:
    """Create or change a service's listing on the status page (`statuspage.listing_changed`)."""
    unknown = set(fields) - set(LISTING_FIELDS)
    if unknown:
        raise TypeError(f"Unknown fields: {sorted(unknown)}")
    row = StatusPageService.objects.select_for_update().filter(service=service).first()
    row = row or StatusPageService(service=service)
    for name, value in fields.items():
        setattr(row, name, value)
    row.full_clean(validate_unique=False)
    row.save()
    emit("statuspage.listing_changed", subject=service.name, data=_listing_data(row), actor=actor)
    return row


@transaction.atomic
def status_listing_delete(*, row: StatusPageService, actor: str = "system") -> None:
    """Take a service off the status page (`statuspage.listing_changed`, public false)."""
    data = {**_listing_data(row), "public": False, "deleted": True}
    row.delete()
    emit("statuspage.listing_changed", subject=data["service"], data=data, actor=actor)


def _incident_data(incident: Incident) -> dict[str, Any]:
    return {
        "incident": incident.pk,
        "title": incident.title,
        "status": incident.status,
        "services": sorted(incident.services.values_list("name", flat=True)),
    }


@transaction.atomic
def incident_create(
    *,
    title: str,
    started_at: datetime | None = None,
    services: Iterable[Service] = (),
    status: str = IncidentStatus.INVESTIGATING,
    message: str = "",
    actor: str = "system",
) -> Incident:
    """Open an incident (`incident.created`); with a message, its first update in `status`."""
    now = timezone.now()
    incident = Incident(title=title, started_at=started_at or now, status=status, created_by=actor[:150])
    incident.full_clean(exclude=["services"])
    incident.save()
    incident.services.set(list(services))
    emit("incident.created", subject=incident.title, data=_incident_data(incident), actor=actor)
    if message:
        incident_update_add(incident=incident, status=status, message=message, actor=actor, at=now)
    elif status == IncidentStatus.RESOLVED:
        Incident.objects.filter(pk=incident.pk).update(resolved_at=incident.started_at)
    return incident


@transaction.atomic
def incident_change(
    *, incident: Incident, actor: str = "system", services: Iterable[Service] | None = None, **fields: Any
) -> Incident:
    """Change an incident's title or start (`incident.changed`); its status moves only with an update."""
    unknown = set(fields) - {"title", "started_at"}
    if unknown:
        raise TypeError(f"Unknown fields: {sorted(unknown)}")
    locked = Incident.objects.select_for_update().get(pk=incident.pk)
    for name, value in fields.items():
        setattr(locked, name, value)
    locked.full_clean(exclude=["services"])
    locked.save()
    if services is not None:
        locked.services.set(list(services))
    emit("incident.changed", subject=locked.title, data=_incident_data(locked), actor=actor)
    return locked


@transaction.atomic
def incident_update_add(
    *, incident: Incident, status: str, message: str, actor: str = "system", at: datetime | None = None
) -> IncidentUpdate:
    """Post an update (`incident.updated`): the incident takes its status; `resolved` closes it at `at`,
    any other status after a resolution reopens it."""
    at = at or timezone.now()
    locked = Incident.objects.select_for_update().get(pk=incident.pk)
    if at < locked.started_at:
        raise ValidationError({"created_at": ["An update cannot be older than the incident's start."]})
    update = IncidentUpdate(incident=locked, status=status, message=message, author=actor[:150], created_at=at)
    update.full_clean()
    newest = locked.updates.order_by("-created_at", "-id").first()
    update.save()
    if newest is None or at >= newest.created_at:  # a back-dated update goes into the history only
        locked.status = status
        locked.resolved_at = at if status == IncidentStatus.RESOLVED else None
        locked.save(update_fields=["status", "resolved_at", "updated_at"])
    emit(
        "incident.updated",
        subject=locked.title,
        data={**_incident_data(locked), "update": update.pk, "update_status": status},
        actor=actor,
    )
    return update


@transaction.atomic
def incident_delete(*, incident: Incident, actor: str = "system") -> None:
    """Delete an incident and its updates (`incident.deleted`)."""
    data = _incident_data(incident)
    incident.delete()
    emit("incident.deleted", subject=data["title"], data=data, actor=actor)
