"""API shapes. Serializers check types and shapes; the services apply every rule (one engine)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from registry.models import (
    CHECK_CONFIG_FIELDS,
    CHECK_STATE_FIELDS,
    Check,
    CheckResult,
    CheckStatus,
    Instance,
    Scheme,
    Service,
    ServiceType,
    validate_url_safe_name,
)
from registry.probes.base import redact_params
from registry.probes.http import redact_headers
from registry.selectors import health_summary


class CheckSerializer(serializers.ModelSerializer):
    """A check's configuration and current state (times in ISO 8601, durations in seconds)."""

    service = serializers.CharField(source="instance.service.name", read_only=True)
    instance_id = serializers.CharField(source="instance.instance_id", read_only=True)
    # Credentials a check sends (Authorization, a redis password) are write-only: shown masked.
    headers = serializers.SerializerMethodField()
    params = serializers.SerializerMethodField()

    class Meta:
        model = Check
        fields = ["id", "service", "instance_id", "name", *CHECK_CONFIG_FIELDS, *CHECK_STATE_FIELDS]
        read_only_fields = fields

    def get_headers(self, check: Check) -> dict[str, str]:
        return redact_headers(check.headers)

    @extend_schema_field(OpenApiTypes.OBJECT)  # `object` values: drf-spectacular would guess a string
    def get_params(self, check: Check) -> dict[str, object]:
        return redact_params(check.params)


class CheckBriefSerializer(serializers.ModelSerializer):
    """A check inside an instance listing."""

    class Meta:
        model = Check
        fields = ["id", "name", "kind", "status", "enabled", "interval", "last_result_at", "last_latency_ms", "output"]
        read_only_fields = fields


class InstanceSerializer(serializers.ModelSerializer):
    """An instance with its URL, status and checks."""

    service = serializers.CharField(source="service.name", read_only=True)
    url = serializers.CharField(read_only=True)
    checks = CheckBriefSerializer(many=True, read_only=True)

    class Meta:
        model = Instance
        fields = [
            "service",
            "instance_id",
            "address",
            "port",
            "scheme",
            "url",
            "tags",
            "metadata",
            "status",
            "maintenance",
            "maintenance_reason",
            "deregister_critical_after",
            "registered_at",
            "last_seen_at",
            "checks",
        ]
        read_only_fields = fields


class DiscoveredInstanceSerializer(serializers.ModelSerializer):
    """What discovery returns per instance."""

    url = serializers.CharField(read_only=True)

    class Meta:
        model = Instance
        fields = ["instance_id", "address", "port", "scheme", "url", "tags", "metadata", "status"]
        read_only_fields = fields


class ServiceSerializer(serializers.ModelSerializer):
    """A service with its health summary (instance counts by status)."""

    health = serializers.SerializerMethodField()
    instance_count = serializers.IntegerField(read_only=True, default=0)

    class Meta:
        model = Service
        fields = [
            "name",
            "display_name",
            "type",
            "description",
            "owner",
            "tags",
            "capabilities",
            "metadata",
            "instance_count",
            "health",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_health(self, service: Service) -> dict[str, int]:
        return health_summary(service)


class ServiceDetailSerializer(ServiceSerializer):
    """A service with its instances and their checks."""

    instances = InstanceSerializer(many=True, read_only=True)

    class Meta(ServiceSerializer.Meta):
        fields = [*ServiceSerializer.Meta.fields, "instances"]
        read_only_fields = fields


class ServiceWriteSerializer(serializers.Serializer):
    """Body of a service create (all fields) or PATCH (any but `name`)."""

    # Validators and choices here too, so the OpenAPI document carries the real pattern and enum.
    name = serializers.CharField(max_length=100, validators=[validate_url_safe_name])
    display_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    type = serializers.ChoiceField(choices=ServiceType.choices, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    owner = serializers.CharField(max_length=200, required=False, allow_blank=True)
    tags = serializers.ListField(child=serializers.CharField(), required=False)
    capabilities = serializers.ListField(child=serializers.CharField(), required=False)
    metadata = serializers.DictField(required=False)


class CheckSpecSerializer(serializers.ModelSerializer):
    """One check in a registration body; omitted fields take the model defaults (interval 10, timeout 5...).

    Its fields are the model's (`CHECK_CONFIG_FIELDS`, with their lengths, bounds and choices); only the
    JSON objects are declared here, for their API shape (string header values, an object of params).
    """

    headers = serializers.DictField(child=serializers.CharField(), required=False)
    params = serializers.DictField(required=False)

    class Meta:
        model = Check
        fields = ["name", *CHECK_CONFIG_FIELDS]

    additional_properties = False  # read by controlplane.schema: unknown fields are refused below

    def to_internal_value(self, data):  # type: ignore[no-untyped-def]
        if isinstance(data, dict):
            unknown = set(data) - set(self.fields)
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in sorted(unknown)})
        return super().to_internal_value(data)


class InstanceRegisterSerializer(serializers.Serializer):
    """Body of an instance registration (upsert by `instance_id`)."""

    instance_id = serializers.CharField(max_length=200, validators=[validate_url_safe_name])
    address = serializers.CharField(max_length=253)
    port = serializers.IntegerField(min_value=1, max_value=65535)
    scheme = serializers.ChoiceField(choices=Scheme.choices, required=False, default="http")
    tags = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    metadata = serializers.DictField(required=False, default=dict)
    deregister_critical_after = serializers.IntegerField(
        required=False, allow_null=True, min_value=60, max_value=365 * 86400
    )
    checks = CheckSpecSerializer(many=True, required=False, default=list)


class HeartbeatSerializer(serializers.Serializer):
    """Body of a TTL update: status passing (default), warning or critical, and an optional output."""

    check = serializers.CharField(required=False, allow_blank=True)
    status = serializers.ChoiceField(
        choices=[CheckStatus.PASSING, CheckStatus.WARNING, CheckStatus.CRITICAL], default=CheckStatus.PASSING
    )
    output = serializers.CharField(required=False, allow_blank=True, default="", max_length=65536)


class MaintenanceSerializer(serializers.Serializer):
    """Body of a maintenance toggle."""

    enabled = serializers.BooleanField()
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)


class CheckResultSerializer(serializers.ModelSerializer):
    """One entry of a check's history."""

    class Meta:
        model = CheckResult
        fields = ["id", "created_at", "status", "latency_ms", "output"]
        read_only_fields = fields
