"""Alerting API: rules, alerts (states), silences and notification channels — thin adapters over services.

Scopes: reading needs `monitoring:read`; rules and silences need `monitoring:write`; channels (which make
the control plane send requests to a URL) need `admin`, like webhook subscriptions.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework import status as http_status
from rest_framework.exceptions import ValidationError
from rest_framework.generics import GenericAPIView, ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from controlplane.access.scopes import Scope
from controlplane.actors import actor_from_request
from monitoring.models import AlertRule, AlertState, NotificationChannel, Silence
from monitoring.services import alerts as alert_services
from monitoring.services import silences as silence_services

READ_WRITE = {"GET": Scope.MONITORING_READ, "*": Scope.MONITORING_WRITE}
READ_ADMIN = {"GET": Scope.MONITORING_READ, "*": Scope.ADMIN}


def masked_url(url: str) -> str:
    """scheme://host[:port]/… — a hook URL's path and query are often its secret (Slack)."""
    if not url:
        return ""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/…"


@extend_schema_field({"type": "object", "additionalProperties": {"type": "string", "maxLength": 1000}})
class StringMapField(serializers.JSONField):
    """A JSON object of strings (labels, annotations, match labels); the service checks names and values."""


@extend_schema_field({"type": "array", "items": {"type": "string", "maxLength": 100}})
class LabelListField(serializers.JSONField):
    """A JSON array of label names (a channel's `group_by`); `[]` = one group, `["..."]` = every label."""


@extend_schema_field(
    {
        "type": "array",
        "minItems": 1,
        "maxItems": 20,
        "items": {
            "type": "object",
            "required": ["name", "value"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_.]*$", "maxLength": 100},
                "op": {"type": "string", "enum": ["=", "!=", "=~", "!~"], "default": "="},
                "value": {"type": "string", "maxLength": 500},
            },
        },
    }
)
class MatcherListField(serializers.JSONField):
    """Alertmanager matchers; regexes (=~, !~) run on RE2 and must not match every alert together."""


class NotificationChannelSerializer(serializers.ModelSerializer):
    """A channel (receiver and route: grouping across rules and its timing); `secret` is write-only and
    `url` is read back masked."""

    secret = serializers.CharField(write_only=True, required=False, allow_blank=True, max_length=128)
    url = serializers.CharField(required=False, allow_blank=True, max_length=500)
    recipients = serializers.ListField(child=serializers.CharField(max_length=254), required=False, max_length=50)
    group_by = LabelListField(required=False)

    class Meta:
        model = NotificationChannel
        fields = ["id", *alert_services.CHANNEL_FIELDS, "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]

    def to_representation(self, instance: NotificationChannel) -> dict[str, Any]:
        body = super().to_representation(instance)
        body["url"] = masked_url(instance.url)
        return body


class NotificationChannelCreatedSerializer(NotificationChannelSerializer):
    """A channel just created (the 201): the only answer that carries its signing `secret`."""

    secret = serializers.CharField(read_only=True)


class AlertRuleSerializer(serializers.ModelSerializer):
    """An alert rule; `channels` by name. Cross-field rules are the service's (400 with field errors)."""

    channels = serializers.SlugRelatedField(
        slug_field="name", many=True, required=False, queryset=NotificationChannel.objects.all()
    )
    match_labels = StringMapField(required=False)
    labels = StringMapField(required=False)
    annotations = StringMapField(required=False)
    threshold = serializers.FloatField(required=False)

    class Meta:
        model = AlertRule
        fields = [
            "id",
            *alert_services.RULE_FIELDS,
            "channels",
            "last_evaluated_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "last_evaluated_at", "created_at", "updated_at"]
        extra_kwargs = {"name": {"validators": []}}  # uniqueness: the model's full_clean, as in the admin

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # Grouping moved to the channel: a client still sending it on the rule is told so, not ignored.
        sent = self.initial_data if isinstance(self.initial_data, dict) else {}
        moved = [name for name in alert_services.GROUPING_FIELDS if name in sent]
        if moved:
            raise ValidationError(
                {name: ["Set on the notification channel: it groups the alerts of all its rules."] for name in moved}
            )
        return attrs


class AlertSerializer(serializers.ModelSerializer):
    """One alert (a rule on one target): its status, `flapping` flag and labels."""

    rule = serializers.CharField(source="rule.name", read_only=True)
    severity = serializers.CharField(source="rule.severity", read_only=True)
    state = serializers.SerializerMethodField()

    class Meta:
        model = AlertState
        fields = [
            "id",
            "rule",
            "severity",
            "target_key",
            "labels",
            "fingerprint",
            "status",
            "state",
            "flapping",
            "value",
            "active_since",
            "firing_since",
            "keep_firing_until",
            "resolved_at",
            "flapping_since",
            "last_evaluated_at",
        ]
        read_only_fields = fields

    def get_state(self, alert: AlertState) -> str:
        """The status, or `flapping` while the alert flaps (what the dashboard shows)."""
        return "flapping" if alert.flapping else alert.status


class SilenceSerializer(serializers.ModelSerializer):
    """A silence; `state` is pending, active or expired. The author is the caller unless given."""

    matchers = MatcherListField()
    starts_at = serializers.DateTimeField(required=False)
    author = serializers.CharField(required=False, max_length=150)
    state = serializers.SerializerMethodField()

    class Meta:
        model = Silence
        fields = ["id", "matchers", "starts_at", "ends_at", "author", "comment", "state", "created_at", "updated_at"]
        read_only_fields = ["id", "state", "created_at", "updated_at"]

    def get_state(self, silence: Silence) -> str:
        return silence_services.silence_state(silence)


class AlertRuleListApi(ListAPIView):
    """List alert rules; create one."""

    required_scopes = READ_WRITE
    serializer_class = AlertRuleSerializer
    queryset = AlertRule.objects.prefetch_related("channels").order_by("name")

    @extend_schema(request=AlertRuleSerializer, responses={201: AlertRuleSerializer})
    def post(self, request: Request) -> Response:
        data = AlertRuleSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        channels = fields.pop("channels", None)
        rule = alert_services.alert_rule_create(channels=channels, actor=actor_from_request(request), **fields)
        return Response(AlertRuleSerializer(rule).data, status=http_status.HTTP_201_CREATED)


class AlertRuleDetailApi(GenericAPIView):
    """Read, change (PATCH) or delete one rule."""

    required_scopes = READ_WRITE
    serializer_class = AlertRuleSerializer

    def get(self, request: Request, pk: int) -> Response:
        return Response(AlertRuleSerializer(get_object_or_404(AlertRule, pk=pk)).data)

    def patch(self, request: Request, pk: int) -> Response:
        rule = get_object_or_404(AlertRule, pk=pk)
        data = AlertRuleSerializer(rule, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        channels = fields.pop("channels", None)
        rule = alert_services.alert_rule_update(
            rule=rule, channels=channels, actor=actor_from_request(request), **fields
        )
        return Response(AlertRuleSerializer(rule).data)

    def delete(self, request: Request, pk: int) -> Response:
        alert_services.alert_rule_delete(rule=get_object_or_404(AlertRule, pk=pk), actor=actor_from_request(request))
        return Response(status=http_status.HTTP_204_NO_CONTENT)


STATUS_FILTER = ("inactive", "pending", "firing", "resolved", "flapping")


class AlertListApi(ListAPIView):
    """Alerts (rule x target), firing first; `?status=` one of inactive, pending, firing, resolved, flapping."""

    required_scopes = {"GET": Scope.MONITORING_READ}
    serializer_class = AlertSerializer

    @extend_schema(
        parameters=[OpenApiParameter("status", str, enum=list(STATUS_FILTER)), OpenApiParameter("rule", str)]
    )
    def get(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        return super().get(request, *args, **kwargs)

    def get_queryset(self):  # type: ignore[no-untyped-def]
        queryset = AlertState.objects.select_related("rule").order_by("status", "-firing_since", "id")
        wanted = self.request.query_params.get("status")
        if wanted is not None:
            if wanted not in STATUS_FILTER:
                raise ValidationError({"status": [f"One of {', '.join(STATUS_FILTER)}."]})
            queryset = queryset.filter(flapping=True) if wanted == "flapping" else queryset.filter(status=wanted)
        rule = self.request.query_params.get("rule")
        if rule is not None:
            queryset = queryset.filter(rule__name=rule)
        return queryset


class SilenceListApi(ListAPIView):
    """List silences (newest first; `?state=pending|active|expired`); create one."""

    required_scopes = READ_WRITE
    serializer_class = SilenceSerializer

    @extend_schema(parameters=[OpenApiParameter("state", str, enum=["pending", "active", "expired"])])
    def get(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        return super().get(request, *args, **kwargs)

    def get_queryset(self):  # type: ignore[no-untyped-def]
        from django.utils import timezone

        now = timezone.now()
        queryset = Silence.objects.order_by("-starts_at", "-id")
        state = self.request.query_params.get("state")
        if state == "active":
            return queryset.filter(starts_at__lte=now, ends_at__gt=now)
        if state == "pending":
            return queryset.filter(starts_at__gt=now)
        if state == "expired":
            return queryset.filter(ends_at__lte=now)
        if state is not None:
            raise ValidationError({"state": ["One of pending, active, expired."]})
        return queryset

    @extend_schema(request=SilenceSerializer, responses={201: SilenceSerializer})
    def post(self, request: Request) -> Response:
        data = SilenceSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        silence = silence_services.silence_create(actor=actor_from_request(request), **data.validated_data)
        return Response(SilenceSerializer(silence).data, status=http_status.HTTP_201_CREATED)


class SilenceDetailApi(GenericAPIView):
    """Read or change (PATCH) one silence; DELETE expires it now (the row stays, as in Alertmanager)."""

    required_scopes = READ_WRITE
    serializer_class = SilenceSerializer

    def get(self, request: Request, pk: int) -> Response:
        return Response(SilenceSerializer(get_object_or_404(Silence, pk=pk)).data)

    def patch(self, request: Request, pk: int) -> Response:
        silence = get_object_or_404(Silence, pk=pk)
        data = SilenceSerializer(silence, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        fields = {k: v for k, v in data.validated_data.items() if k != "author"}
        silence = silence_services.silence_update(silence=silence, actor=actor_from_request(request), **fields)
        return Response(SilenceSerializer(silence).data)

    @extend_schema(responses={200: SilenceSerializer})
    def delete(self, request: Request, pk: int) -> Response:
        silence = silence_services.silence_expire(
            silence=get_object_or_404(Silence, pk=pk), actor=actor_from_request(request)
        )
        return Response(SilenceSerializer(silence).data)


class NotificationChannelListApi(ListAPIView):
    """List channels (URLs masked, secrets never shown); create one (admin: its URL receives requests)."""

    required_scopes = READ_ADMIN
    serializer_class = NotificationChannelSerializer
    queryset = NotificationChannel.objects.order_by("name")

    @extend_schema(request=NotificationChannelSerializer, responses={201: NotificationChannelCreatedSerializer})
    def post(self, request: Request) -> Response:
        data = NotificationChannelSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        channel = alert_services.notification_channel_create(actor=actor_from_request(request), **data.validated_data)
        body = NotificationChannelSerializer(channel).data
        if channel.secret:
            body["secret"] = channel.secret
        return Response(body, status=http_status.HTTP_201_CREATED)


class NotificationChannelDetailApi(GenericAPIView):
    """Read, change (PATCH; the URL is re-checked by the egress guard) or delete one channel."""

    required_scopes = READ_ADMIN
    serializer_class = NotificationChannelSerializer

    def get(self, request: Request, pk: int) -> Response:
        return Response(NotificationChannelSerializer(get_object_or_404(NotificationChannel, pk=pk)).data)

    def patch(self, request: Request, pk: int) -> Response:
        channel = get_object_or_404(NotificationChannel, pk=pk)
        data = NotificationChannelSerializer(channel, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        fields = {k: v for k, v in data.validated_data.items() if not (k == "secret" and not v)}
        channel = alert_services.notification_channel_update(
            channel=channel, actor=actor_from_request(request), **fields
        )
        return Response(NotificationChannelSerializer(channel).data)

    def delete(self, request: Request, pk: int) -> Response:
        channel = get_object_or_404(NotificationChannel, pk=pk)
        alert_services.notification_channel_delete(channel=channel, actor=actor_from_request(request))
        return Response(status=http_status.HTTP_204_NO_CONTENT)
