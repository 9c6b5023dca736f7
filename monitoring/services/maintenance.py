"""Writes of maintenance windows, and the sync that makes the registry's maintenance flag a window."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from controlplane.events.services import emit
from monitoring.models import MaintenanceKind, MaintenanceOrigin, MaintenanceScope, MaintenanceWindow

EDITABLE = (
    "name",
    "description",
    "scope",
    "service",
    "instance",
    "kind",
    "starts_at",
    "ends_at",
    "weekdays",
    "start_time",
    "duration_minutes",
    "timezone",
    "enabled",
)


def _event_data(window: MaintenanceWindow) -> dict[str, Any]:
    return {
        "window": window.pk,
        "name": window.name,
        "scope": window.scope,
        "service_id": window.service_id,
        "instance_id": window.instance_id,
        "kind": window.kind,
        "origin": window.origin,
    }


@transaction.atomic
def maintenance_window_create(*, actor: str = "system", **fields: Any) -> MaintenanceWindow:
    """Create a window after the model's checks (`maintenance.created`)."""
    unknown = set(fields) - set(EDITABLE)
    if unknown:
        raise TypeError(f"Unknown fields: {sorted(unknown)}")
    window = MaintenanceWindow(**fields, created_by=actor[:150], origin=MaintenanceOrigin.MANUAL)
    window.full_clean()
    window.save()
    emit("maintenance.created", subject=window.name, data=_event_data(window), actor=actor)
    return window


@transaction.atomic
def maintenance_window_update(*, window: MaintenanceWindow, actor: str = "system", **fields: Any) -> MaintenanceWindow:
    """Change a window's fields after the model's checks (`maintenance.updated`)."""
    unknown = set(fields) - set(EDITABLE)
    if unknown:
        raise TypeError(f"Unknown fields: {sorted(unknown)}")
    locked = MaintenanceWindow.objects.select_for_update().get(pk=window.pk)
    for name, value in fields.items():
        setattr(locked, name, value)
    locked.full_clean()
    locked.save()
    emit("maintenance.updated", subject=locked.name, data=_event_data(locked), actor=actor)
    return locked


@transaction.atomic
def maintenance_window_delete(*, window: MaintenanceWindow, actor: str = "system") -> None:
    """Delete a window (`maintenance.deleted`); past uptime already rolled up keeps its maintenance time."""
    data = _event_data(window)
    window.delete()
    emit("maintenance.deleted", subject=data["name"], data=data, actor=actor)


def _flag_times(subjects: dict[int, str], *, entering: bool, since: datetime) -> dict[int, datetime]:
    """When each instance entered (or left) maintenance, from the registry's `instance.status_changed` events."""
    from controlplane.events.models import Event

    if not subjects:
        return {}
    wanted = {subject: pk for pk, subject in subjects.items()}
    found: dict[int, datetime] = {}
    rows = Event.objects.filter(
        kind="instance.status_changed", subject__in=list(wanted), created_at__gte=since
    ).order_by("-id")
    for subject, data, created_at in rows.values_list("subject", "data", "created_at"):
        pk = wanted.get(subject)
        if pk is None or pk in found or not isinstance(data, dict):
            continue
        if (data.get("new") if entering else data.get("old")) == "maintenance":
            found[pk] = created_at
    return found


@transaction.atomic
def maintenance_flags_sync(*, now: datetime | None = None) -> int:
    """Open a window (origin `registry_flag`) for each instance whose registry flag is set, close it when cleared.

    The start and end are the times of the registry's `instance.status_changed` events into and out of
    `maintenance` when they are found (else now). Returns windows opened + closed.
    """
    from registry.models import Instance

    now = now or timezone.now()
    open_windows = {
        w.instance_id: w
        for w in MaintenanceWindow.objects.select_for_update().filter(
            origin=MaintenanceOrigin.REGISTRY_FLAG, ends_at__isnull=True
        )
    }
    flagged = {
        pk: (f"{service}/{instance_id}", reason)
        for pk, service, instance_id, reason in Instance.objects.filter(maintenance=True).values_list(
            "pk", "service__name", "instance_id", "maintenance_reason"
        )
    }
    since = now - timedelta(days=1)
    to_open = {pk: flagged[pk][0] for pk in flagged.keys() - open_windows.keys()}
    to_close = {pk: w for pk, w in open_windows.items() if pk not in flagged}
    started = _flag_times(to_open, entering=True, since=since)
    for pk, subject in to_open.items():
        reason = flagged[pk][1]
        window = MaintenanceWindow.objects.create(
            name=f"{subject} (registry flag)"[:200],
            description=reason,
            scope=MaintenanceScope.INSTANCE,
            instance_id=pk,
            kind=MaintenanceKind.ONE_OFF,
            starts_at=min(started.get(pk, now), now),
            origin=MaintenanceOrigin.REGISTRY_FLAG,
            created_by="registry",
        )
        emit("maintenance.created", subject=window.name, data=_event_data(window))
    if to_close:
        subjects = {
            pk: f"{service}/{instance_id}"
            for pk, service, instance_id in Instance.objects.filter(pk__in=list(to_close)).values_list(
                "pk", "service__name", "instance_id"
            )
        }
        ended = _flag_times(subjects, entering=False, since=since)
        for pk, window in to_close.items():
            window.ends_at = max(min(ended.get(pk, now), now), window.starts_at or now)
            window.save(update_fields=["ends_at", "updated_at"])
            emit("maintenance.updated", subject=window.name, data=_event_data(window))
    return len(to_open) + len(to_close)
