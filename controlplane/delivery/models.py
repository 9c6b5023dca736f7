"""The abstract base of every outbound delivery kind (webhook, pipeline delivery, alert notification).

A concrete kind subclasses `OutboundDelivery`, adds the fields that say what to send, sets the class
attributes and implements `outbound_request`; the engine (`controlplane.delivery.services`) does the rest:
claiming, sending within the total deadline, recording, backoff, the failure event.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import models

from controlplane.delivery.messages import OutboundRequest, OutboundResponse
from controlplane.egress import Purpose


class DeliveryStatus(models.TextChoices):
    """Where a delivery is: waiting for an attempt, delivered, or given up (final error or last attempt)."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class OutboundDelivery(models.Model):
    """One message to one target, with its attempts; the row is the source of truth, never the queue."""

    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # Set while a worker holds the delivery, to the end of its longest possible attempt plus a margin
    # (`services.claim_seconds`); a crashed worker's claim simply expires.
    claimed_until = models.DateTimeField(null=True, blank=True)
    # When a task message was last sent for the pending attempt (creation or sweep); cleared when the attempt
    # is recorded. The sweep skips rows queued within a claim's length, so a backed-up `deliveries` queue
    # is not fed one duplicate per row every five seconds.
    queued_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    #: The key of this kind in `kinds.DELIVERY_KINDS` (and the first argument of the `deliver` task).
    delivery_kind: ClassVar[str] = ""
    #: The egress policy its requests go out under.
    egress_purpose: ClassVar[Purpose] = Purpose.WEBHOOK
    #: Event emitted when a delivery of this kind fails for good (empty: none).
    failed_event_kind: ClassVar[str] = ""
    #: Relations loaded with the row for an attempt.
    attempt_related: ClassVar[tuple[str, ...]] = ()

    class Meta:
        abstract = True

    @classmethod
    def deadline_seconds(cls) -> float:
        """Total deadline of one attempt's request (connect, headers, body)."""
        raise NotImplementedError

    @classmethod
    def claim_seconds(cls) -> float:
        """How long a claim lasts: the longest possible attempt (its deadline) plus the bookkeeping margin."""
        from django.conf import settings

        return cls.deadline_seconds() + settings.DELIVERY_CLAIM_MARGIN_SECONDS

    @classmethod
    def max_attempts(cls) -> int:
        """Attempts before a retryable failure becomes final."""
        raise NotImplementedError

    @classmethod
    def backoff_base_seconds(cls) -> float:
        """The first retry delay; it doubles per attempt up to `DELIVERY_BACKOFF_CAP_SECONDS`."""
        raise NotImplementedError

    def outbound_request(self) -> OutboundRequest:
        """What to send now (may raise `DeliveryNoTarget` when there is nowhere to send it yet)."""
        raise NotImplementedError

    def transmit(self, *, deadline: float) -> OutboundResponse:
        """Send this delivery once, finished within `deadline` seconds.

        The default POSTs `outbound_request()` through the egress guard (`transport.send`); a kind that does
        not speak HTTP (e-mail notifications) overrides it and raises the typed `DeliveryError`s.
        """
        from controlplane.delivery.transport import send  # aiohttp: loaded by the processes that send only

        return send(self.outbound_request(), purpose=self.egress_purpose, deadline=deadline)

    def failed_event(self) -> tuple[str, dict[str, Any]] | None:
        """(subject, data) of the failure event, or None to emit none. Never secrets, never the URL."""
        return None

    def attempt_fields(self) -> dict[str, Any]:
        """Kind-specific fields to store with the attempt's outcome (set by `outbound_request`)."""
        return {}

    def attempt_recorded(self, *, retrying: bool) -> None:
        """Hook after the outcome is stored (metrics)."""

    def target_label(self) -> str:
        """A short name of the target for logs (not the URL)."""
        return ""
