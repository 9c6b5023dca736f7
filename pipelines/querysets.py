"""Query helpers for runs and deliveries."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone


class RunQuerySet(models.QuerySet):
    """Runs, newest first."""

    def for_pipeline(self, pipeline_id: int) -> RunQuerySet:
        return self.filter(pipeline_id=pipeline_id)

    def older_than(self, cutoff) -> RunQuerySet:  # type: ignore[no-untyped-def]
        return self.filter(created_at__lt=cutoff)


class DeliveryQuerySet(models.QuerySet):
    """Deliveries to services."""

    def due(self) -> DeliveryQuerySet:
        """Pending deliveries whose retry time has come and that no live worker holds."""
        now = timezone.now()
        return self.filter(status="pending", next_attempt_at__lte=now).filter(
            Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
        )
