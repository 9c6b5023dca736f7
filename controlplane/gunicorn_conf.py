"""gunicorn settings used by `manage.py serve` in production mode."""

from __future__ import annotations

import os


def child_exit(server, worker) -> None:  # type: ignore[no-untyped-def]
    """Tell prometheus-client a worker died, so its live gauges leave the merged /metrics output."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


accesslog = None  # the app writes its own JSON access line per request
# Heartbeat files on tmpfs: a disk-backed /tmp can stall workers under load (gunicorn FAQ).
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
keepalive = 5
