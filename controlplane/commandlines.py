"""The command lines of the control plane's processes, defined once.

`manage.py serve` runs these; tests (tests/processes.py, tests/conftest.py) and benchmarks (bench/) start
the same commands, so what is tested and measured is what is served. docs/operations.md shows them for a
production layout (systemd units or containers).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from django.conf import settings

#: Every Celery queue, in the order `serve` starts their workers.
QUEUES: tuple[str, ...] = ("probes", "deliveries", "housekeeping")


def gunicorn(
    bind: str, *, workers: int, app: str = "controlplane.wsgi:application", extra: Sequence[str] = ()
) -> list[str]:
    """gunicorn serving the WSGI application (production web) with the project's gunicorn_conf."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        app,
        "-c",
        "python:controlplane.gunicorn_conf",
        "-b",
        bind,
        "-w",
        str(workers),
        *extra,
    ]


#: The ASGI application every uvicorn of the control plane serves (embedded web, production watch server).
UVICORN_APP = "controlplane.asgi:application"
#: uvicorn's HTTP/1.1 protocol: httptools (C parser, one write per response part) answering malformed
#: requests with problem+json (controlplane/uvicorn_http.py). The h11 one is kept for comparison.
HTTP_PROTOCOL = "controlplane.uvicorn_http:ProblemHttpToolsProtocol"
H11_PROTOCOL = "controlplane.uvicorn_http:ProblemH11Protocol"


def uvicorn(
    host: str,
    port: int | str,
    *,
    app: str = UVICORN_APP,
    http: str = HTTP_PROTOCOL,
    extra: Sequence[str] = (),
) -> list[str]:
    """uvicorn serving the ASGI application (embedded web, production watch server)."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        host,
        "--port",
        str(port),
        "--no-access-log",
        "--lifespan",
        "off",
        "--http",  # problem+json for requests the protocol refuses (controlplane/uvicorn_http.py)
        http,
        *extra,
    ]


def celery_worker(
    queues: Iterable[str] = QUEUES,
    *,
    concurrency: int,
    name: str,
    loglevel: str = "info",
    quiet: bool = False,
    extra: Sequence[str] = (),
) -> list[str]:
    """A Celery worker consuming `queues` with `concurrency` pool processes, node name `name@%h`.

    `quiet` drops Celery's start-up banner (serve prints what matters once, for all of its workers).
    """
    queues = list(queues)
    unknown = set(queues) - set(QUEUES)
    if unknown:
        raise ValueError(f"unknown queue(s) {sorted(unknown)}; the queues are {QUEUES}")
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "controlplane",
        *(["--quiet"] if quiet else []),
        "worker",
        "-l",
        loglevel,
        "-Q",
        ",".join(queues),
        "-c",
        str(concurrency),
        "-n",
        f"{name}@%h",
        # Gossip and mingle only add broker traffic and start-up time for workers of one deployment.
        "--without-gossip",
        "--without-mingle",
        *extra,
    ]


def celery_beat(
    *, schedule: Path | str | None = None, loglevel: str = "info", quiet: bool = False, extra: Sequence[str] = ()
) -> list[str]:
    """Celery beat with the database scheduler (settings); its local schedule file lives in the var dir."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "controlplane",
        *(["--quiet"] if quiet else []),
        "beat",
        "-l",
        loglevel,
        "--pidfile=",
        "-s",
        str(schedule or Path(settings.VAR_DIR) / "celerybeat-schedule"),
        *extra,
    ]
