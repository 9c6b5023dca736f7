"""Validation rules of monitoring's own models (plain functions: admin forms, API and services share them)."""

from __future__ import annotations

from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

if TYPE_CHECKING:
    from monitoring.models import MaintenanceWindow


def timezone_error(name: str) -> str | None:
    """None when `name` is an IANA time zone known to this system, else the message."""
    # The set is checked first: ZoneInfo() also opens arbitrary relative paths under the tz directory.
    if not isinstance(name, str) or name not in _zones():
        return f"Unknown time zone {name!r}: give an IANA name such as Europe/Paris or UTC."
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"Unknown time zone {name!r}: give an IANA name such as Europe/Paris or UTC."
    return None


_ZONES: set[str] = set()


def _zones() -> set[str]:
    if not _ZONES:
        # Not zones of the tz database: "localtime" is whatever the machine says, "Factory" means "unset".
        _ZONES.update(available_timezones() - {"localtime", "Factory", "posixrules"})
        _ZONES.add("UTC")
    return _ZONES


def maintenance_window_errors(window: MaintenanceWindow) -> dict[str, list[str]]:
    """Field -> messages for a window whose fields do not fit together."""
    from monitoring.models import MaintenanceKind, MaintenanceOrigin, MaintenanceScope

    errors: dict[str, list[str]] = {}

    def add(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

    if window.scope == MaintenanceScope.SERVICE:
        if window.service_id is None:
            add("service", "A service-wide window needs a service.")
        if window.instance_id is not None:
            add("instance", "A service-wide window names no instance.")
    elif window.scope == MaintenanceScope.INSTANCE:
        if window.instance_id is None:
            add("instance", "An instance window needs an instance.")
        if window.service_id is not None:
            add("service", "An instance window names no service (the instance's is implied).")
    elif window.scope == MaintenanceScope.EVERYTHING and (window.service_id or window.instance_id):
        add("scope", "A window on everything names no service or instance.")
    zone_problem = timezone_error(window.timezone)
    if zone_problem:
        add("timezone", zone_problem)
    if window.starts_at and window.ends_at and window.ends_at <= window.starts_at:
        add("ends_at", "The end must be after the start.")
    if window.kind == MaintenanceKind.ONE_OFF:
        if window.starts_at is None:
            add("starts_at", "A one-off window needs a start.")
        if window.ends_at is None and window.origin != MaintenanceOrigin.REGISTRY_FLAG:
            add("ends_at", "A one-off window needs an end (only the registry flag is open-ended).")
    elif window.kind == MaintenanceKind.RECURRING:
        weekdays = window.weekdays
        if (
            not isinstance(weekdays, list)
            or not weekdays
            or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 6 for d in weekdays)
            or len(set(weekdays)) != len(weekdays)
        ):
            add("weekdays", "Give distinct weekdays as integers 0 (Monday) to 6 (Sunday).")
        if window.start_time is None:
            add("start_time", "A recurring window needs a start time.")
        if not window.duration_minutes:
            add("duration_minutes", "A recurring window needs a duration in minutes.")
    return errors
