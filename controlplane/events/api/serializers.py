"""Serializers for events and webhook subscriptions (secrets are write-only)."""

from __future__ import annotations

from rest_framework import serializers

from controlplane.events.models import Event, WebhookDelivery, WebhookSubscription


class EventSerializer(serializers.ModelSerializer):
    class Meta:
        model = Event
        fields = ["id", "kind", "actor", "subject", "data", "request_id", "created_at"]
        read_only_fields = fields


class WebhookSubscriptionSerializer(serializers.ModelSerializer):
    """A subscription; `secret` may be written but is only ever read back masked."""

    secret = serializers.CharField(write_only=True, required=False, allow_blank=True, max_length=128)
    kinds = serializers.ListField(child=serializers.CharField(max_length=100), min_length=1)

    class Meta:
        model = WebhookSubscription
        fields = ["id", "name", "url", "kinds", "secret", "active", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]


class WebhookSubscriptionCreatedSerializer(WebhookSubscriptionSerializer):
    """A subscription just created (documentation of the 201): the only answer that carries its `secret`."""

    secret = serializers.CharField(read_only=True)


class WebhookDeliverySerializer(serializers.ModelSerializer):
    event_kind = serializers.CharField(source="event.kind", read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "event",
            "event_kind",
            "status",
            "attempts",
            "next_attempt_at",
            "last_status_code",
            "last_error",
            "created_at",
            "delivered_at",
        ]
        read_only_fields = fields
