"""Reads for the engine: which deliveries of a kind are due."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from controlplane.delivery.kinds import delivery_model
from controlplane.delivery.models import DeliveryStatus


def deliveries_due(*, kind: str, limit: int = 500) -> list[int]:
    """Ids of pending deliveries of `kind` whose attempt time has come, that no live worker holds and
    for which no message was sent within a claim's length (a lost message is sent again after that)."""
    now = timezone.now()
    model = delivery_model(kind)
    requeue_before = now - timedelta(seconds=model.claim_seconds())
    return list(
        model._default_manager.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .filter(Q(queued_at__isnull=True) | Q(queued_at__lt=requeue_before))
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
