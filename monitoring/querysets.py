"""Querysets for monitoring: points in a range, windows and silences in effect, alerts by status."""

from __future__ import annotations

import datetime as dt

from django.db import models
from django.db.models import Q


class MetricPointQuerySet(models.QuerySet):
    """Points of one level in a time range."""

    def in_range(self, *, resolution: int, start: dt.datetime, end: dt.datetime) -> MetricPointQuerySet:
        """Buckets starting in [start, end)."""
        return self.filter(resolution=resolution, bucket__gte=start, bucket__lt=end)


class MaintenanceWindowQuerySet(models.QuerySet):
    """Windows that may overlap an interval (recurring ones are expanded by the selectors)."""

    def overlapping(self, start: dt.datetime, end: dt.datetime) -> MaintenanceWindowQuerySet:
        """Enabled windows that can cover some time in [start, end): bounds checked, recurrence not yet."""
        return self.filter(enabled=True).filter(
            Q(starts_at__isnull=True) | Q(starts_at__lt=end),
            Q(ends_at__isnull=True) | Q(ends_at__gt=start),
        )


class SilenceQuerySet(models.QuerySet):
    """Silences by their state at a time."""

    def active_at(self, when: dt.datetime) -> SilenceQuerySet:
        return self.filter(starts_at__lte=when, ends_at__gt=when)


class AlertStateQuerySet(models.QuerySet):
    """Alert states by status."""

    def firing(self) -> AlertStateQuerySet:
        return self.filter(status="firing")

    def pending(self) -> AlertStateQuerySet:
        return self.filter(status="pending")
