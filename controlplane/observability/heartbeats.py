"""Worker heartbeats: each Celery worker's main process records that it is alive, for /readyz.

/readyz used to ping the workers through the broker and wait up to a second for replies (1.15 s of its
answer time, issue #10). A row per worker (`Heartbeat`, where beat already records its own) is read in
one query instead. The heartbeat runs on the worker's own timer in its main process, so it says that
the worker is alive and consuming, not that a pool slot is free: stale check results (`/readyz` component
`checks`) tell when probes stop being run.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from celery import bootsteps
from django.db import close_old_connections
from django.utils import timezone

HEARTBEAT_EVERY_SECONDS = 5.0
PREFIX = "worker:"
logger = logging.getLogger("controlplane.observability")


def worker_component(hostname: str) -> str:
    """The heartbeat row's name for a worker node (`worker:<node name>`, shortened to fit 50 characters)."""
    name = PREFIX + hostname
    if len(name) <= 50:
        return name
    return f"{name[:41]}~{hashlib.sha256(hostname.encode()).hexdigest()[:8]}"


def heartbeat_record(component: str) -> None:
    """Record that `component` is alive now (never raises: a missed heartbeat shows in /readyz)."""
    from controlplane.observability.models import Heartbeat

    try:
        close_old_connections()
        Heartbeat.objects.update_or_create(component=component, defaults={"seen_at": timezone.now()})
    except Exception:  # noqa: BLE001 - the worker must keep working whatever the database does
        logger.warning("could not record the heartbeat of %s", component, exc_info=True)


def heartbeat_clear(component: str) -> None:
    """Remove `component`'s row on a clean shutdown, so /readyz stops listing it at once."""
    from controlplane.observability.models import Heartbeat

    try:
        close_old_connections()
        Heartbeat.objects.filter(component=component).delete()
    except Exception:  # noqa: BLE001 - the row simply ages out
        logger.warning("could not clear the heartbeat of %s", component, exc_info=True)


class WorkerHeartbeat(bootsteps.StartStopStep):
    """A worker bootstep: a heartbeat at start, then every 5 s on the worker's timer; cleared at stop."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.tref: Any = None
        self.component = ""

    def start(self, worker: Any) -> None:
        self.component = worker_component(worker.hostname)
        heartbeat_record(self.component)
        self.tref = worker.timer.call_repeatedly(HEARTBEAT_EVERY_SECONDS, heartbeat_record, (self.component,))

    def stop(self, worker: Any) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None
        if self.component:
            heartbeat_clear(self.component)
