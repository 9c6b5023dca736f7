"""Celery beat scheduler that also records its own heartbeat for /readyz."""

from __future__ import annotations

import logging
import time

from django.db import close_old_connections
from django.utils import timezone
from django_celery_beat.schedulers import DatabaseScheduler

HEARTBEAT_EVERY_SECONDS = 5.0
logger = logging.getLogger("controlplane.beat")


class HeartbeatDatabaseScheduler(DatabaseScheduler):
    """django-celery-beat's DatabaseScheduler (schedules editable in admin) plus a heartbeat row."""

    _last_beat = 0.0

    def tick(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        now = time.monotonic()
        if now - self._last_beat >= HEARTBEAT_EVERY_SECONDS:
            self._last_beat = now
            from controlplane.observability.models import Heartbeat

            try:
                close_old_connections()
                Heartbeat.objects.update_or_create(component="beat", defaults={"seen_at": timezone.now()})
            except Exception:  # noqa: BLE001 - a missed heartbeat shows in /readyz; beat must keep ticking
                logger.warning("could not record the beat heartbeat", exc_info=True)
        # Wake at least every second so 1 s schedules (check dispatch) stay on time.
        return min(super().tick(*args, **kwargs), 1.0)
