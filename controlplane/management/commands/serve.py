"""`manage.py serve`: run and supervise web, watch server, one Celery worker per queue and beat as one group.

One `serve` per data directory: a lock on `<var>/serve.lock`, held until the last process of the group is
gone, refuses a second one (and its second beat). Command lines come from `controlplane.commandlines`.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import IO

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from controlplane import commandlines
from controlplane.management.commands.bootstrap import CREDENTIALS_FILE, RESET_HINT
from controlplane.supervisor import Child, Supervisor

LOCK_FILE = "serve.lock"


def _split_bind(value: str) -> tuple[str, str]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise CommandError(f"A bind address looks like 127.0.0.1:8000, got {value!r}.")
    return host.strip("[]"), port


def take_data_dir_lock(var_dir: Path) -> IO[str]:
    """Lock `var_dir` for this `serve` (non-blocking); a live `serve` on it makes this a CommandError.

    The open file is inherited by the supervisor's guard process, so the lock lasts until every process of
    this `serve` is gone, even when the supervisor itself is killed.
    """
    path = var_dir / LOCK_FILE
    handle = open(path, "a+")  # noqa: SIM115 - held for the life of the process
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise CommandError(
            f"Another `serve` (pid {holder}) is running on the data directory {var_dir}: stop it first, or give "
            "this one its own CONTROLPLANE_VAR_DIR. (Its lock is released when its last process has exited.)"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


class Command(BaseCommand):
    help = (
        "Run the control plane: web (uvicorn serving every route in embedded mode; gunicorn plus a uvicorn "
        "watch server in production mode), one Celery worker per queue (probes, deliveries, housekeeping) "
        "and Celery beat, supervised together."
    )

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("--bind", default="127.0.0.1:8000", help="Web address (default 127.0.0.1:8000).")
        parser.add_argument(
            "--watch-bind",
            default="127.0.0.1:8001",
            help="Production mode: address of the ASGI server for /api/v1/config/<ns>/watch/ (default 127.0.0.1:8001).",
        )
        parser.add_argument("--web-workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "2")))
        parser.add_argument(
            "--worker-concurrency",
            type=int,
            default=None,
            help="Pool size of every queue's worker (default: WORKER_CONCURRENCY_<QUEUE> settings, 2/2/1).",
        )
        parser.add_argument("--no-worker", action="store_true", help="Do not start Celery workers.")
        parser.add_argument("--no-beat", action="store_true", help="Do not start Celery beat.")
        parser.add_argument("--grace", type=float, default=20.0, help="Seconds to wait for a graceful stop.")

    def handle(self, *args, **opts) -> None:  # type: ignore[no-untyped-def]
        host, port = _split_bind(opts["bind"])
        var_dir = Path(settings.VAR_DIR)
        lock = take_data_dir_lock(var_dir)
        Path(settings.CONFIG_SOURCE_ROOT).mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        # Every child (web, watch, each worker's pool processes, beat) writes its samples here and /metrics
        # merges them, in both modes: probes run in the workers, not in the process that answers /metrics.
        metrics_dir = var_dir / "prometheus"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        children: list[Child] = []

        if settings.PRODUCTION:
            # WhiteNoise serves STATIC_ROOT; collecting here keeps it in step with the installed code.
            call_command("collectstatic", interactive=False, verbosity=0)
            watch_host, watch_port = _split_bind(opts["watch_bind"])
            children.append(
                Child(
                    "web",
                    commandlines.gunicorn(f"{host}:{port}", workers=opts["web_workers"]),
                    env,
                    ready_text="Booting worker",
                )
            )
            children.append(
                Child("watch", commandlines.uvicorn(watch_host, watch_port), env, ready_text="Uvicorn running on")
            )
        else:
            # Embedded: one ASGI process serves every route, the watch path included, on one port.
            children.append(Child("web", commandlines.uvicorn(host, port), env, ready_text="Uvicorn running on"))
        if not opts["no_worker"]:
            # One worker per queue: deliveries stuck on a slow target cannot take the probes' slots.
            for queue in commandlines.QUEUES:
                concurrency = opts["worker_concurrency"] or settings.WORKER_CONCURRENCY[queue]
                children.append(
                    Child(
                        queue,
                        commandlines.celery_worker([queue], concurrency=concurrency, name=queue, quiet=True),
                        env,
                        ready_text=" ready.",  # celery's "<name>@<host> ready." log line
                    )
                )
        if not opts["no_beat"]:
            children.append(Child("beat", commandlines.celery_beat(quiet=True), env))
        mode = "production" if settings.PRODUCTION else "embedded"
        self.stdout.write(f"serve: {mode} mode, web on http://{host}:{port}/ (admin at /admin/)")
        status = Supervisor(
            children,
            grace=opts["grace"],
            out=self.stdout,
            on_ready=lambda: self._announce(f"http://{host}:{port}", var_dir),
            keep_fds=(lock.fileno(),),
        ).run()
        lock.close()
        if status:
            raise SystemExit(status)

    def _announce(self, base: str, var_dir: Path) -> None:
        """Once every component runs: where to go, and the first-run credentials (shown once, then deleted)."""
        lines = [
            "",
            "=" * 72,
            "  controlplane is up",
            f"  Dashboard: {base}/  (sign in as the admin: live services, alerts, maintenance)",
            f"  Status:    {base}/status/  (the public status page)",
            f"  Admin:     {base}/admin/",
            f"  API docs:  {base}/api/docs/",
            f"  Health:    {base}/readyz",
        ]
        credentials = var_dir / CREDENTIALS_FILE
        if credentials.exists():
            try:
                data = json.loads(credentials.read_text())
            except ValueError:
                data = {}
            if settings.PRODUCTION:
                # serve's output goes to a log (journald, a container's log) in production: no secrets there.
                lines.append("  The first-run credentials were printed by `bootstrap` only.")
            else:
                if data.get("password"):
                    lines.append(f"  Admin login:   {data['username']} / {data['password']}")
                if data.get("api_key"):
                    lines.append(f"  API key (every scope):  {data['api_key']}")
                lines.append("  (shown once: they are not stored in plain text anywhere any more)")
            credentials.unlink(missing_ok=True)
        lines += [f"  Lost them? {RESET_HINT}", "=" * 72, ""]
        self.stdout.write("\n".join(lines))
        self.stdout.flush()
