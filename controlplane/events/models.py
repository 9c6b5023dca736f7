"""Event log, webhook subscriptions and their deliveries."""

from __future__ import annotations

import fnmatch

from django.db import models


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


class DeliveryStatus(models.TextChoices):
    """Where a webhook delivery is: waiting for an attempt, delivered, or given up after the last attempt."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class WebhookDelivery(models.Model):
    """One event sent to one subscription, with its attempts; retried with backoff until delivered or failed."""

    subscription = models.ForeignKey(WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # Set while a worker holds the delivery; a crashed worker's claim simply expires.
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["subscription", "event"], name="one_delivery_per_event")]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event.kind} -> {self.subscription.name} ({self.status})"
