"""Forms of the alerts page: a silence and a maintenance window, each handed to its service to save.

Times typed in the page are wall-clock in the time zone chosen next to them (an IANA name), turned into
UTC here; everything else is validated by the model and the service, whose errors come back as field errors.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

from monitoring.models import MaintenanceKind, MaintenanceScope
from registry.models import Instance, Service

MATCHER = re.compile(r"^\s*(?P<name>[A-Za-z_][A-Za-z0-9_.]*)\s*(?P<op>=~|!~|!=|=)\s*(?P<value>.*?)\s*$")
WEEKDAYS = [(0, "Mon"), (1, "Tue"), (2, "Wed"), (3, "Thu"), (4, "Fri"), (5, "Sat"), (6, "Sun")]
LOCAL = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")


def parse_zone(name: str) -> ZoneInfo:
    """An IANA zone by name; a name that is not one (or a path trick) is a field error."""
    if name not in available_timezones() and name != "UTC":
        raise ValidationError(f"{name!r} is not an IANA time zone such as Europe/Paris.")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"{name!r} is not an IANA time zone such as Europe/Paris.") from exc


def parse_matchers(text: str) -> list[dict[str, str]]:
    """One matcher per line or comma: `label=value`, `label!=value`, `label=~regex`, `label!~regex`."""
    matchers = []
    for raw in re.split(r"[\n,]", text):
        if not raw.strip():
            continue
        match = MATCHER.match(raw)
        if match is None:
            raise ValidationError(f"{raw.strip()!r} is not a matcher such as service=payments or severity=~crit.*")
        if not match["value"]:
            raise ValidationError(f"{raw.strip()!r} has no value.")
        matchers.append({"name": match["name"], "op": match["op"], "value": match["value"]})
    if not matchers:
        raise ValidationError("Give at least one matcher, e.g. service=payments.")
    return matchers


class _Zoned(forms.Form):
    """Turns the naive datetime fields into aware UTC ones in the chosen time zone."""

    timezone = forms.CharField(max_length=64, initial="UTC", help_text="IANA time zone of the times above.")
    zoned_fields: tuple[str, ...] = ()

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        name = data.get("timezone")
        if not name:
            return data
        try:
            zone = parse_zone(name)
        except ValidationError as exc:
            self.add_error("timezone", exc)
            return data
        for field in self.zoned_fields:
            value = data.get(field)
            if isinstance(value, datetime):
                naive = (
                    timezone.make_naive(value, timezone.get_current_timezone()) if timezone.is_aware(value) else value
                )
                data[field] = naive.replace(tzinfo=zone).astimezone(ZoneInfo("UTC"))
        return data


class SilenceForm(_Zoned):
    """A silence: matchers, a start (default now), an end or a duration, and a comment; the author is the user."""

    matchers = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), help_text="service=payments, severity=critical"
    )
    starts_at = forms.DateTimeField(required=False, widget=LOCAL, help_text="Empty = now.")
    ends_at = forms.DateTimeField(required=False, widget=LOCAL)
    duration_minutes = forms.IntegerField(
        required=False, min_value=1, max_value=366 * 24 * 60, help_text="Instead of an end."
    )
    comment = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))
    zoned_fields = ("starts_at", "ends_at")

    def clean_matchers(self) -> list[dict[str, str]]:
        return parse_matchers(self.cleaned_data["matchers"])

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        starts = data.get("starts_at") or timezone.now()
        ends = data.get("ends_at")
        if ends is None and data.get("duration_minutes"):
            ends = starts + timedelta(minutes=data["duration_minutes"])
        if ends is None:
            self.add_error("ends_at", "Give an end or a duration.")
        elif ends <= starts:
            self.add_error("ends_at", "The end must be after the start.")
        data["starts_at"], data["ends_at"] = starts, ends
        return data


class MaintenanceForm(_Zoned):
    """A maintenance window on a service, an instance or everything: one-off (start/end) or recurring weekly."""

    name = forms.CharField(max_length=200)
    scope = forms.ChoiceField(choices=MaintenanceScope.choices)
    service = forms.CharField(max_length=100, required=False, help_text="Service name (scope service or instance).")
    instance = forms.CharField(max_length=200, required=False, help_text="Instance id (scope instance).")
    kind = forms.ChoiceField(choices=MaintenanceKind.choices, initial=MaintenanceKind.ONE_OFF)
    starts_at = forms.DateTimeField(required=False, widget=LOCAL)
    ends_at = forms.DateTimeField(required=False, widget=LOCAL)
    weekdays = forms.TypedMultipleChoiceField(
        choices=WEEKDAYS, coerce=int, required=False, widget=forms.CheckboxSelectMultiple
    )
    start_time = forms.TimeField(required=False, widget=forms.TimeInput(attrs={"type": "time"}))
    duration_minutes = forms.IntegerField(required=False, min_value=1, max_value=7 * 24 * 60)
    description = forms.CharField(max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 2}))
    zoned_fields = ("starts_at", "ends_at")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        scope = data.get("scope")
        service = instance = None
        if scope in (MaintenanceScope.SERVICE, MaintenanceScope.INSTANCE):
            service = Service.objects.filter(name=data.get("service") or "").first()
            if service is None:
                self.add_error("service", "No service by that name.")
        if scope == MaintenanceScope.INSTANCE and service is not None:
            instance = Instance.objects.filter(service=service, instance_id=data.get("instance") or "").first()
            if instance is None:
                self.add_error("instance", "No instance by that id in this service.")
        data["service_obj"], data["instance_obj"] = service, instance
        return data

    def window_fields(self) -> dict[str, Any]:
        """The service's keyword arguments (only after is_valid())."""
        data = self.cleaned_data
        recurring = data["kind"] == MaintenanceKind.RECURRING
        return {
            "name": data["name"],
            "description": data.get("description") or "",
            "scope": data["scope"],
            "service": data["service_obj"] if data["scope"] != MaintenanceScope.EVERYTHING else None,
            "instance": data["instance_obj"] if data["scope"] == MaintenanceScope.INSTANCE else None,
            "kind": data["kind"],
            "starts_at": data.get("starts_at"),
            "ends_at": data.get("ends_at"),
            "weekdays": sorted(data.get("weekdays") or []) if recurring else [],
            "start_time": data.get("start_time") if recurring else None,
            "duration_minutes": data.get("duration_minutes") if recurring else None,
            "timezone": data["timezone"],
        }
