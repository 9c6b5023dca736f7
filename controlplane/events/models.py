"""Event log, webhook subscriptions and their deliveries."""

from __future__ import annotations

import fnmatch
import json
from typing import Any

from django.conf import settings
from django.db import models

from controlplane.delivery.messages import OutboundRequest
from controlplane.delivery.models import DeliveryStatus, OutboundDelivery
from controlplane.egress import Purpose

__all__ = ["DeliveryStatus", "Event", "WebhookDelivery", "WebhookSubscription"]


class Event(models.Model):
    """Something that happened, named `<domain>.<what>`; rows are appended, never edited."""

    kind = models.CharField(max_length=100, db_index=True)
    actor = models.CharField(max_length=150, help_text="user:<name>, key:<prefix> or system")
    subject = models.CharField(max_length=255, blank=True, db_index=True)
    data = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} {self.subject}"


class WebhookSubscription(models.Model):
    """An HTTP endpoint that receives events whose kind matches one of its patterns (`check.*`)."""

    name = models.CharField(max_length=100, unique=True)
    url = models.URLField(max_length=500)
    kinds = models.JSONField(default=list, help_text='Kind patterns such as ["check.*", "config.changed"].')
    secret = models.CharField(max_length=128, help_text="Shared secret for the HMAC-SHA256 signature.")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def matches(self, kind: str) -> bool:
        return any(fnmatch.fnmatchcase(kind, pattern) for pattern in self.kinds)


class WebhookDelivery(OutboundDelivery):
    """One event sent to one subscription, through the delivery engine (`controlplane.delivery`)."""

    subscription = models.ForeignKey(WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")

    delivery_kind = "webhook"
    egress_purpose = Purpose.WEBHOOK
    failed_event_kind = "webhook.delivery_failed"
    attempt_related = ("subscription", "event")

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["subscription", "event"], name="one_delivery_per_event")]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event.kind} -> {self.subscription.name} ({self.status})"

    @classmethod
    def deadline_seconds(cls) -> float:
        return float(settings.WEBHOOK_TIMEOUT_SECONDS)

    @classmethod
    def max_attempts(cls) -> int:
        return int(settings.WEBHOOK_MAX_ATTEMPTS)

    @classmethod
    def backoff_base_seconds(cls) -> float:
        return float(settings.WEBHOOK_BACKOFF_BASE_SECONDS)

    def outbound_request(self) -> OutboundRequest:
        """The event as compact JSON, signed with the subscription's secret (`signing.sign`)."""
        from controlplane.events.signing import SIGNATURE_HEADER, sign

        event = self.event
        body = json.dumps(
            {
                "id": event.pk,
                "kind": event.kind,
                "subject": event.subject,
                "actor": event.actor,
                "data": event.data,
                "created_at": event.created_at.isoformat(),
                "request_id": event.request_id,
            },
            separators=(",", ":"),
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "controlplane-webhooks/1",
            "X-Controlplane-Event": event.kind,
            "X-Controlplane-Delivery": str(self.pk),
            SIGNATURE_HEADER: sign(self.subscription.secret, body),
        }
        return OutboundRequest(self.subscription.url, body, headers)

    def failed_event(self) -> tuple[str, dict[str, Any]] | None:
        # A failure notice about a failure notice would feed itself through a subscription to
        # `webhook.*` whose target is down: one level only.
        if self.event.kind == self.failed_event_kind:
            return None
        return self.subscription.name, {
            "subscription": self.subscription.name,
            "event_id": self.event_id,
            "event_kind": self.event.kind,
        }

    def target_label(self) -> str:
        return self.subscription.name
