"""gunicorn settings used by `manage.py serve` in production mode."""

from __future__ import annotations

import json
import os


def child_exit(server, worker) -> None:  # type: ignore[no-untyped-def]
    """Tell prometheus-client a worker died, so its live gauges leave the merged /metrics output."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def _write_problem(sock, status_int: int, reason: str, mesg: str) -> None:  # type: ignore[no-untyped-def]
    """gunicorn's own error answers (bad request line or header, URI too long...) as problem+json, not HTML."""
    from gunicorn import util

    from controlplane.errors import PROBLEM_TYPE_BASE

    request_id = os.urandom(16).hex()
    body = json.dumps(
        {
            "type": PROBLEM_TYPE_BASE + reason.lower().replace(" ", "-"),
            "title": reason,
            "status": status_int,
            "detail": mesg or reason,
            "request_id": request_id,
        }
    ).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/problem+json\r\n"
        f"Content-Length: {len(body)}\r\nX-Request-ID: {request_id}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


def post_worker_init(worker) -> None:  # type: ignore[no-untyped-def]
    """In each worker: problem+json for gunicorn's own errors, and the request deadline (sync workers).

    gunicorn writes its error pages through `gunicorn.util.write_error` (looked up at call time), so
    replacing that one function changes every error page and nothing else. The deadline answers a slow
    request with 503 problem+json before gunicorn's `timeout` would kill the worker mid-response.
    """
    from gunicorn import util
    from gunicorn.workers.sync import SyncWorker

    from controlplane import deadline

    util.write_error = _write_problem
    if isinstance(worker, SyncWorker):

        def retire() -> None:
            worker.alive = False  # finish this response, exit; the arbiter starts a fresh worker

        deadline.configure(deadline.deadline_for(worker.cfg.timeout), on_expired=retire)


accesslog = None  # the app writes its own JSON access line per request
# Heartbeat files on tmpfs: a disk-backed /tmp can stall workers under load (gunicorn FAQ).
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
keepalive = 5
