"""Serializers for pipelines, steps and runs. Shapes only: the services validate definitions."""

from __future__ import annotations

from rest_framework import serializers

from pipelines.models import Delivery, Pipeline, Run, RunStatus, Step
from pipelines.selectors import steps_ordered


class StepSerializer(serializers.ModelSerializer):
    class Meta:
        model = Step
        fields = ["name", "kind", "priority", "condition", "config", "on_error", "enabled"]


class PipelineSerializer(serializers.ModelSerializer):
    """A pipeline with its steps in run order."""

    steps = serializers.SerializerMethodField()

    class Meta:
        model = Pipeline
        fields = [
            "slug",
            "name",
            "description",
            "enabled",
            "error_policy",
            "version",
            "steps",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_steps(self, pipeline: Pipeline) -> list[dict]:
        return StepSerializer(steps_ordered(pipeline), many=True).data


class StepInputSerializer(serializers.Serializer):
    """A step as written; the kind's own schema is checked by the service."""

    name = serializers.CharField(max_length=100)
    kind = serializers.CharField(max_length=20)
    priority = serializers.IntegerField(required=False, default=100, min_value=-1_000_000, max_value=1_000_000)
    condition = serializers.CharField(required=False, allow_blank=True, allow_null=True, default="", max_length=2000)
    config = serializers.JSONField(required=False, default=dict)
    on_error = serializers.ChoiceField(choices=["fail", "skip"], required=False, default="fail")
    enabled = serializers.BooleanField(required=False, default=True)


class PipelineInputSerializer(serializers.Serializer):
    """The create/replace body; for PATCH every field is optional."""

    slug = serializers.CharField(max_length=100)
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    enabled = serializers.BooleanField(required=False, default=True)
    error_policy = serializers.ChoiceField(choices=["stop", "continue"], required=False, default="stop")
    steps = StepInputSerializer(many=True, required=False, default=list)


class PacketSerializer(serializers.Serializer):
    """A packet (documentation only; run bodies are parsed and checked by the executor's `prepare_packet`).

    Mirrors what `prepare_packet` accepts: `id` 1..200 characters (null or omitted: generated), `metadata`
    and `tags` may be null, any other field is refused.
    """

    additional_properties = False  # read by controlplane.schema: unknown packet fields are refused
    body_required = True  # `{}` is a packet, no body is not

    id = serializers.CharField(required=False, allow_null=True, min_length=1, max_length=200, trim_whitespace=False)
    payload = serializers.JSONField(required=False, allow_null=True)
    metadata = serializers.DictField(required=False, allow_null=True)
    tags = serializers.ListField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False), required=False, allow_null=True
    )


class RunAcceptedSerializer(serializers.Serializer):
    """The 202 answer of `run/?async=true` (documentation only): poll `url` until `status` is no longer pending."""

    run_id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=RunStatus.choices)
    pipeline_version = serializers.IntegerField()
    url = serializers.CharField()


class TraceEntrySerializer(serializers.Serializer):
    step = serializers.CharField()
    ran = serializers.BooleanField()
    duration_ms = serializers.FloatField()
    error = serializers.CharField(allow_null=True)
    outcome = serializers.ChoiceField(choices=["ok", "skipped", "error", "dropped"])


class RunResultSerializer(serializers.Serializer):
    """The answer of a sync run (documentation only)."""

    status = serializers.ChoiceField(choices=["succeeded", "failed", "dropped"])
    packet = PacketSerializer()
    routes = serializers.ListField(child=serializers.CharField())
    trace = TraceEntrySerializer(many=True)
    pipeline_version = serializers.IntegerField()
    duration_ms = serializers.FloatField()
    error = serializers.CharField(required=False)
    errors = serializers.ListField(child=serializers.CharField(), required=False)
    run_id = serializers.IntegerField(required=False)
    deliveries = serializers.ListField(child=serializers.IntegerField(), required=False)
    chained = serializers.ListField(child=serializers.DictField(), required=False)


class RunSerializer(serializers.ModelSerializer):
    pipeline = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    pipeline_version = serializers.IntegerField(source="version", read_only=True)
    deliveries = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = [
            "id",
            "pipeline",
            "pipeline_version",
            "mode",
            "status",
            "input",
            "output",
            "routes",
            "trace",
            "chained",
            "error",
            "duration_ms",
            "request_id",
            "actor",
            "created_at",
            "started_at",
            "attempts",
            "finished_at",
            "deliveries",
        ]
        read_only_fields = fields

    def get_deliveries(self, run: Run) -> list[dict]:
        return DeliverySerializer(run.deliveries.all(), many=True).data

    def to_representation(self, run: Run) -> dict:
        """Packets, trace and error are hidden from a reader (context `reader`) who may not read the config
        the run could read: a recorded run is read back under the same rule as the run itself."""
        from pipelines.access import run_hidden_reason

        body = super().to_representation(run)
        reader = self.context.get("reader")
        reason = run_hidden_reason(reader, run) if reader is not None else ""
        if reason:
            body.update(input=None, output=None, trace=[], chained=[], error=f"Hidden: {reason}.")
        return body


class DeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = Delivery
        fields = [
            "id",
            "service",
            "status",
            "attempts",
            "last_status_code",
            "last_error",
            "instance_url",
            "next_attempt_at",
            "delivered_at",
        ]
        read_only_fields = fields
