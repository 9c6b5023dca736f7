"""Alerting models of their own: aggregation groups and the notification outbox (a delivery-engine kind).

Imported by `monitoring.models`, so they belong to the monitoring app and its migrations.
"""

from __future__ import annotations

from typing import Any

from django.db import models

from controlplane.delivery.errors import DeliveryNetworkError
from controlplane.delivery.messages import OutboundRequest, OutboundResponse
from controlplane.delivery.models import OutboundDelivery
from controlplane.egress import Purpose


class AlertGroup(models.Model):
    """The alerts (of any rule) routed to one channel that share the values of its `group_by` labels: an
    Alertmanager aggregation group, keyed by (channel, group label values).

    `notified` holds the keys of the alerts the last notification reported as firing; a flush compares the
    current set with it to decide whether anything changed (Alertmanager's `needsUpdate`).
    """

    channel = models.ForeignKey("monitoring.NotificationChannel", on_delete=models.CASCADE, related_name="groups")
    key = models.CharField(max_length=64)
    labels = models.JSONField(default=dict, blank=True)
    next_flush_at = models.DateTimeField(null=True, blank=True)
    last_notified_at = models.DateTimeField(null=True, blank=True)
    notified = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["channel", "key"]
        constraints = [models.UniqueConstraint(fields=["channel", "key"], name="monitoring_alert_group_unique")]
        indexes = [models.Index(fields=["next_flush_at"], name="monitoring_group_due")]

    def __str__(self) -> str:
        return f"{self.channel_id}:{self.labels}"


class Notification(OutboundDelivery):
    """One message of one alert group to one channel, sent (and retried) by the platform's delivery engine.

    `payload` is the Alertmanager webhook message (version 4) as rendered when the group was flushed, so a
    retry sends the same content; each channel kind renders its own body from it (`monitoring.channels`).
    """

    channel = models.ForeignKey(
        "monitoring.NotificationChannel", on_delete=models.CASCADE, related_name="notifications"
    )
    group = models.ForeignKey(
        AlertGroup, null=True, blank=True, on_delete=models.SET_NULL, related_name="notifications"
    )
    alert_status = models.CharField(max_length=10, help_text="firing or resolved (the group's status).")
    payload = models.JSONField(default=dict)

    delivery_kind = "notification"
    egress_purpose = Purpose.NOTIFICATION
    failed_event_kind = "notification.failed"
    attempt_related = ("channel",)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="monitoring_notification_due")]

    def __str__(self) -> str:
        return f"{self.alert_status} -> {self.channel_id} ({self.status})"

    @classmethod
    def deadline_seconds(cls) -> float:
        from monitoring import conf

        return float(conf.get("MONITORING_NOTIFICATION_TIMEOUT_SECONDS"))

    @classmethod
    def max_attempts(cls) -> int:
        from monitoring import conf

        return int(conf.get("MONITORING_NOTIFICATION_MAX_ATTEMPTS"))

    @classmethod
    def backoff_base_seconds(cls) -> float:
        from monitoring import conf

        return float(conf.get("MONITORING_NOTIFICATION_BACKOFF_BASE_SECONDS"))

    def outbound_request(self) -> OutboundRequest:
        from monitoring.channels import channel_kind

        return channel_kind(self.channel.kind).request(self.channel, self.payload, delivery_id=self.pk)

    def transmit(self, *, deadline: float) -> OutboundResponse:
        """HTTP kinds go through the engine's transport (egress guard); e-mail through Django's backend."""
        from monitoring.channels import channel_kind

        kind = channel_kind(self.channel.kind)
        if kind.http:
            return super().transmit(deadline=deadline)
        try:
            kind.send(self.channel, self.payload, deadline=deadline)
        except DeliveryNetworkError:
            raise
        except Exception as exc:  # noqa: BLE001 - any backend failure is retried; the type names it
            raise DeliveryNetworkError(f"{type(exc).__name__}: could not send ({kind.name})") from None
        return OutboundResponse(200, {}, b"")

    def failed_event(self) -> tuple[str, dict[str, Any]] | None:
        return self.channel.name, {"channel": self.channel.name, "alert_status": self.alert_status}

    def attempt_recorded(self, *, retrying: bool) -> None:
        from monitoring.alerting.collector import NOTIFICATIONS

        NOTIFICATIONS.labels(kind=self.channel.kind, outcome=self.status if not retrying else "retrying").inc()

    def target_label(self) -> str:
        return self.channel.name
