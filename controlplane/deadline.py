"""A per-request wall-clock deadline for gunicorn's sync workers, just below gunicorn's `timeout`.

When a request outlives `timeout`, gunicorn's arbiter kills the worker (SIGABRT) and the client gets a
closed connection or gunicorn's HTML error page. With a deadline armed (by `gunicorn_conf.post_worker_init`,
sync workers only: the signal needs the request on the main thread), SIGALRM raises
`RequestDeadlineExceeded` inside the request a little earlier; the exception handlers answer it with a
503 problem+json (`Retry-After`), like a database outage. The interrupted code may have been anywhere
(mid-query, holding a connection), so the worker closes its database connections and is recycled after
that response: gunicorn starts a fresh one, and no half-finished state serves another request.

A request blocked inside C code that does not return to Python (a long database statement) is interrupted
only when that call returns; PostgreSQL's `statement_timeout` bounds those.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from controlplane.errors import RequestDeadlineExceeded

logger = logging.getLogger("controlplane.deadline")

_seconds: float | None = None
_on_expired: Callable[[], None] | None = None
_fired = False


def deadline_for(timeout: float) -> float | None:
    """The deadline for a gunicorn `timeout`: `REQUEST_DEADLINE_SECONDS`, else 10% (at least 1 s) less."""
    configured = os.environ.get("REQUEST_DEADLINE_SECONDS")
    if configured:
        seconds = float(configured)
        return seconds if seconds > 0 else None
    if timeout <= 0:  # gunicorn's timeout disabled: nothing to stay under
        return None
    return max(timeout - max(1.0, timeout * 0.1), 0.5)


def configure(seconds: float | None, *, on_expired: Callable[[], None] | None = None) -> None:
    """Arm (or, with None, disarm) the deadline for every following request of this process."""
    global _seconds, _on_expired
    if seconds is not None and threading.current_thread() is not threading.main_thread():
        raise RuntimeError("A request deadline needs requests on the main thread (a sync worker).")
    _seconds, _on_expired = seconds, on_expired


def _expired(signum: int, frame: Any) -> None:
    global _fired
    _fired = True
    raise RequestDeadlineExceeded(f"The request ran longer than {_seconds} s.")


@contextmanager
def armed() -> Iterator[None]:
    """Run one request under the deadline (a no-op when none is configured)."""
    global _fired
    if _seconds is None:
        yield
        return
    _fired = False
    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, _seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if _fired:
            _recycle()


def _recycle() -> None:
    """After an interrupted request: drop database connections and let the server replace this worker."""
    from django.db import connections

    logger.warning("A request ran past its %s s deadline; this worker will be replaced.", _seconds)
    try:
        connections.close_all()
    except Exception:  # noqa: BLE001 - a connection left mid-statement may fail to close; it is dropped anyway
        logger.debug("Closing connections after a deadline failed", exc_info=True)
    if _on_expired is not None:
        _on_expired()
