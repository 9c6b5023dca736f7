"""Config namespaces: revisions applied and source failures per minute, from configstore rows and events."""

from __future__ import annotations

from datetime import UTC, datetime

from monitoring.points import Agg
from monitoring.selectors.maintenance import MaintenanceMap
from monitoring.sources.base import MinuteSource, Points


def _minute(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(second=0, microsecond=0)


class NamespacesSource(MinuteSource):
    """`namespace:<name>:changes`: breakdown {"revisions": n, "source_failures": n}; count = revisions."""

    name = "namespaces"

    def collect(self, *, start: datetime, end: datetime, maintenance: MaintenanceMap) -> Points:
        from configstore.models import Revision
        from controlplane.events.models import Event

        points: Points = {}

        def bump(namespace: str, when: datetime, label: str) -> None:
            key = (("namespace", namespace, "changes"), _minute(when))
            agg = points.get(key)
            if agg is None:
                agg = points[key] = Agg()
            agg.add(label, 1)
            if label == "revisions":
                agg.count += 1

        revisions = Revision.objects.filter(created_at__gte=start, created_at__lt=end).values_list(
            "namespace__name", "created_at"
        )
        for namespace, created_at in revisions.iterator(chunk_size=5000):
            bump(namespace, created_at, "revisions")
        failures = Event.objects.filter(
            kind="config.source_failed", created_at__gte=start, created_at__lt=end
        ).values_list("subject", "created_at")
        for namespace, created_at in failures.iterator(chunk_size=5000):
            bump(namespace, created_at, "source_failures")
        return points
