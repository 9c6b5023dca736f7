"""The Celery application, configured from Django settings (`CELERY_*`)."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import beat_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
# Celery's Django fixup runs every system check when a worker starts; those load the URL conf, the admin
# and DRF's template tags into a process that serves none of them (with the SimpleAdminConfig change, the
# registry benchmark's worker went from 320 to 292 MB RSS, main + 2 pool processes).
# The checks run where they belong: `manage.py check --deploy` in CI and deployment, and `migrate`.
os.environ.setdefault("CELERY_SKIP_CHECKS", "1")

app = Celery("controlplane")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Each worker records a heartbeat row that /readyz reads (instead of a synchronous broadcast ping).
app.steps["worker"].add("controlplane.observability.heartbeats:WorkerHeartbeat")


@beat_init.connect
def _one_beat_per_data_directory(sender: object = None, **kwargs: object) -> None:
    """Refuse to start a second beat beside a live one on the same data directory (issue #10, point 4).

    Two beats send every periodic task twice. The lock is held for the life of the beat process; beats on
    other machines share no data directory, so a production deployment still runs exactly one beat
    (docs/operations.md).
    """
    import fcntl
    from pathlib import Path

    from django.conf import settings

    path = Path(settings.VAR_DIR) / "beat.lock"
    handle = open(path, "a+")  # noqa: SIM115 - held until the process exits
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        raise SystemExit(
            f"Another Celery beat (pid {holder}) is running on the data directory {settings.VAR_DIR}: "
            "two beats would send every periodic task twice. Not starting."
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    _held_locks.append(handle)


_held_locks: list[object] = []
