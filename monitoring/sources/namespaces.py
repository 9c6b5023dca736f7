"""Config namespaces: revisions applied and source failures per minute, from configstore rows and events;
rejected writes counted as the config store announces them (`config_write_rejected`).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

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


logger = logging.getLogger("monitoring.sources")


def write_rejected(sender: Any, *, namespace: str, reason: str, origin: str, **kwargs: Any) -> None:
    """`config_write_rejected`: one more refusal in `namespace:<name>:rejected_writes` this minute.

    count = refusals, breakdown by reason (invalid / conflict / forbidden). A refused change set leaves no
    row in the config store (its transaction rolled back), so unlike revisions it cannot be recomputed
    later: it is added to its minute point at once (a write per refusal, which a refusal already costs).
    A source reload that is refused is counted as a source failure (its event), not here. A minute the
    roll-up has already passed counts in the first one it has not (as late request tallies do).
    """
    if origin.startswith("source:"):
        return
    from monitoring.models import Resolution
    from monitoring.services.metrics import points_add, watermark_get

    try:
        bucket = _minute(datetime.now(UTC))
        watermark = watermark_get(name="minute")
        if watermark is not None and bucket < watermark:
            bucket = watermark
        agg = Agg(count=1)
        agg.add(reason, 1)
        points_add(
            resolution=Resolution.MINUTE, points={(("namespace", namespace[:300], "rejected_writes"), bucket): agg}
        )
    except Exception:  # noqa: BLE001 - counting a refusal must never turn the caller's 400 into a 500
        logger.exception("could not count a rejected config write for %s", namespace)


def connect() -> None:
    """Listen to the config store's refusals (called once at start-up by `monitoring.alerting.wiring`)."""
    from configstore.signals import config_write_rejected

    config_write_rejected.connect(write_rejected, dispatch_uid="monitoring-config-write-rejected")
