"""What mutes an alert's notifications: an active silence matching its labels, or maintenance of its target."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from monitoring.alerting.matchers import matchers_match
from monitoring.models import Silence
from monitoring.selectors.maintenance import maintenance_map

if TYPE_CHECKING:
    from monitoring.models import AlertState


class Suppressor:
    """Loaded once per flush (two queries plus one for flagged instances), then asked per alert."""

    def __init__(self, *, now: datetime) -> None:
        from registry.models import Instance

        self.silences = [s.matchers for s in Silence.objects.active_at(now)]
        self.maintenance = maintenance_map(now, now + timedelta(microseconds=1))
        # The registry's flag counts from the moment it is set, before the sync turns it into a window.
        self.flagged = set(Instance.objects.filter(maintenance=True).values_list("pk", flat=True))

    def silenced(self, alert: AlertState) -> bool:
        return any(matchers_match(matchers, alert.labels) for matchers in self.silences)

    def in_maintenance(self, alert: AlertState) -> bool:
        service_id, instance_id = _refs(alert.target_key)
        if self.maintenance.everything:
            return True
        if instance_id is not None and service_id is not None:
            return instance_id in self.flagged or bool(self.maintenance.for_instance(instance_id, service_id))
        if service_id is not None:
            return bool(self.maintenance.for_service(service_id))
        return False

    def muted(self, alert: AlertState) -> str | None:
        """Why the alert is muted ("silenced", "maintenance"), or None."""
        if self.silenced(alert):
            return "silenced"
        if self.in_maintenance(alert):
            return "maintenance"
        return None


def _refs(target_key: str) -> tuple[int | None, int | None]:
    """(service pk, instance pk) from a target key `service:<pk>[/instance:<pk>[/check:<pk>]]`."""
    service_id = instance_id = None
    for part in target_key.split("/"):
        kind, _, value = part.partition(":")
        if kind == "service" and value.isdigit():
            service_id = int(value)
        elif kind == "instance" and value.isdigit():
            instance_id = int(value)
    return service_id, instance_id
