"""Monitoring API shapes: query parameters of the metrics reads, maintenance windows. Services apply the rules."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from monitoring.models import MaintenanceKind, MaintenanceScope, MaintenanceWindow
from monitoring.selectors.series import MAX_POINTS
from monitoring.selectors.uptime import UNIT_SECONDS, WindowError, parse_window
from monitoring.sources.derived import DERIVED
from registry.models import Service

SERIES_KINDS = sorted(DERIVED)
# Every metric of some kind (which ones a kind has is a rule across parameters: refused with 400 `errors`).
SERIES_METRICS = sorted(set().union(*(set(metrics) for metrics in DERIVED.values())))
# The query parameters' rules as the OpenAPI document states them; the serializers below check exactly these
# (ASCII digits, no trimming: `str.isdigit` takes "²", which `int` refuses with a 500, and a value the document
# refuses must not be accepted after stripping spaces either).
_WINDOW = r"[1-9][0-9]{0,5}[mhd]"
STEP_PATTERN = rf"^([0-9]{{1,9}}|{_WINDOW})$"
WINDOWS_PATTERN = rf"^{_WINDOW}(,{_WINDOW}){{0,9}}$"
UPTIME_TARGET_PATTERN = r"^(check|instance|service):."
DEFAULT_WINDOWS = "1h,24h,7d,30d,90d"
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


class AwareDateTimeField(serializers.DateTimeField):
    """ISO 8601 with an explicit offset (or Z): a naive time is ambiguous, so it is refused, not guessed."""

    def to_internal_value(self, value):  # type: ignore[no-untyped-def]
        if isinstance(value, str) and not value.strip():
            self.fail("invalid", format="ISO 8601")
        parsed = super().to_internal_value(value)
        if timezone.is_naive(parsed):
            raise serializers.ValidationError("Give the time with its offset, e.g. 2026-03-02T10:00:00Z.")
        return parsed

    def enforce_timezone(self, value):  # type: ignore[no-untyped-def]
        # DRF would make a naive value aware in the current zone; keep it naive so it is refused above.
        if timezone.is_naive(value):
            return value
        try:
            return value.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00+14:00 or 9999-12-31T23:59-12:00: no such UTC time
            self.fail("overflow")
        return value  # unreachable: fail() raises


def parse_step(text: str) -> int:
    """`300`, `5m`, `1h`, `1d` -> seconds (STEP_PATTERN)."""
    if re.fullmatch(STEP_PATTERN, text) is None:
        raise serializers.ValidationError("Give the step in seconds or as 5m, 1h, 1d.")
    if text[-1].isdigit():
        return int(text)
    return int(text[:-1]) * UNIT_SECONDS[text[-1]]


class SeriesQuerySerializer(serializers.Serializer):
    """`?kind=&target=&metric=&from=&to=&step=`: `to` defaults to now, `from` to 24 h before `to`."""

    kind = serializers.ChoiceField(choices=SERIES_KINDS)
    target = serializers.CharField(max_length=300, trim_whitespace=False, allow_blank=True)
    metric = serializers.CharField(max_length=64)
    to = AwareDateTimeField(required=False)
    step = serializers.CharField(
        required=False,
        max_length=20,
        trim_whitespace=False,
        help_text=f"Seconds or 5m/1h/1d; at most {MAX_POINTS} points.",
    )

    def get_fields(self):  # type: ignore[no-untyped-def]
        fields = super().get_fields()
        fields["from"] = AwareDateTimeField(required=False)  # `from` is a keyword: declared here
        return fields

    def validate_step(self, value: str) -> int:
        return parse_step(value)

    def validate(self, attrs: dict) -> dict:
        end = attrs.get("to") or timezone.now()
        start = attrs.get("from") or end - timedelta(hours=24)
        if start < EARLIEST or end > timezone.now() + timedelta(days=366):
            raise serializers.ValidationError({"from": ["The range must lie between 2000 and a year from now."]})
        if end <= start:
            raise serializers.ValidationError({"to": ["`to` must be after `from`."]})
        metric = attrs["metric"]
        if metric not in DERIVED[attrs["kind"]]:
            raise serializers.ValidationError(
                {"metric": [f"Unknown metric for {attrs['kind']}; one of {', '.join(sorted(DERIVED[attrs['kind']]))}."]}
            )
        return {**attrs, "from": start, "to": end}


class UptimeQuerySerializer(serializers.Serializer):
    """`?target=<kind>:<name>&windows=1h,24h,…`: kind one of check, instance, service."""

    target = serializers.CharField(max_length=400, trim_whitespace=False)
    windows = serializers.CharField(required=False, default=DEFAULT_WINDOWS, max_length=200, trim_whitespace=False)

    def validate_target(self, value: str) -> tuple[str, str]:
        kind, sep, name = value.partition(":")
        if re.match(UPTIME_TARGET_PATTERN, value) is None:
            raise serializers.ValidationError(
                "Give the target as service:<name>, instance:<service>/<id> or check:<id>."
            )
        return kind, name

    def validate_windows(self, value: str) -> list[str]:
        names = value.split(",")
        if re.fullmatch(WINDOWS_PATTERN, value) is None or len(set(names)) != len(names):
            raise serializers.ValidationError("Give one to ten distinct windows such as 1h,24h,7d,30d,90d.")
        for name in names:
            try:
                parse_window(name)
            except WindowError as exc:
                raise serializers.ValidationError(str(exc)) from None
        return names


class PointSerializer(serializers.Serializer):
    """One point: the bucket's start, the value (null: nothing known) and the samples behind it."""

    t = serializers.DateTimeField()
    value = serializers.FloatField(allow_null=True)
    count = serializers.IntegerField()


class SeriesSerializer(serializers.Serializer):
    """A series read: at most 2,000 points at `step`, from the roll-up level `resolution`."""

    kind = serializers.CharField()
    target = serializers.CharField()
    metric = serializers.CharField()
    unit = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    step = serializers.IntegerField()
    resolution = serializers.IntegerField()
    points = PointSerializer(many=True)


class UptimeWindowSerializer(serializers.Serializer):
    """Uptime over one window; `uptime` null when nothing is known outside maintenance."""

    window = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    uptime = serializers.FloatField(allow_null=True)
    passing_seconds = serializers.FloatField(source="passing")
    failing_seconds = serializers.FloatField(source="failing")
    maintenance_seconds = serializers.FloatField(source="maintenance")
    unknown_seconds = serializers.FloatField(source="unknown")


class UptimeSerializer(serializers.Serializer):
    """Uptime of one target over each window asked for."""

    target = serializers.CharField()
    windows = UptimeWindowSerializer(many=True)


@extend_schema_field(OpenApiTypes.STR)
class InstanceNameField(serializers.Field):
    """An instance as `<service>/<instance_id>`."""

    def to_representation(self, value):  # type: ignore[no-untyped-def]
        return f"{value.service.name}/{value.instance_id}"

    def to_internal_value(self, data):  # type: ignore[no-untyped-def]
        from registry.models import Instance

        if not isinstance(data, str) or data.count("/") != 1:
            raise serializers.ValidationError("Give the instance as <service>/<instance_id>.")
        service, instance_id = data.split("/")
        found = Instance.objects.filter(service__name=service, instance_id=instance_id).first()
        if found is None:
            raise serializers.ValidationError(f"No instance {data!r}.")
        return found


class MaintenanceWindowSerializer(serializers.ModelSerializer):
    """A maintenance window; `service` by name, `instance` as `<service>/<instance_id>`."""

    service = serializers.SlugRelatedField(
        slug_field="name", queryset=Service.objects.all(), required=False, allow_null=True
    )
    instance = InstanceNameField(required=False, allow_null=True)
    scope = serializers.ChoiceField(choices=MaintenanceScope.choices)
    kind = serializers.ChoiceField(choices=MaintenanceKind.choices, default=MaintenanceKind.ONE_OFF)
    starts_at = AwareDateTimeField(required=False, allow_null=True)
    ends_at = AwareDateTimeField(required=False, allow_null=True)
    weekdays = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=6), required=False, max_length=7
    )

    class Meta:
        model = MaintenanceWindow
        fields = [
            "id",
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
            "origin",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["origin", "created_by", "created_at", "updated_at"]
