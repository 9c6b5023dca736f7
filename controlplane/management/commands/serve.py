"""`manage.py serve`: run and supervise web, watch server, Celery worker and beat as one group."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from controlplane.supervisor import Child, Supervisor


def _split_bind(value: str) -> tuple[str, str]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise CommandError(f"A bind address looks like 127.0.0.1:8000, got {value!r}.")
    return host.strip("[]"), port


class Command(BaseCommand):
    help = (
        "Run the control plane: web (uvicorn serving every route in embedded mode; gunicorn plus a uvicorn "
        "watch server in production mode), one Celery worker and Celery beat, supervised together."
    )

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("--bind", default="127.0.0.1:8000", help="Web address (default 127.0.0.1:8000).")
        parser.add_argument(
            "--watch-bind",
            default="127.0.0.1:8001",
            help="Production mode: address of the ASGI server for /api/v1/config/<ns>/watch/ (default 127.0.0.1:8001).",
        )
        parser.add_argument("--web-workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "2")))
        parser.add_argument("--worker-concurrency", type=int, default=2)
        parser.add_argument("--no-worker", action="store_true", help="Do not start a Celery worker.")
        parser.add_argument("--no-beat", action="store_true", help="Do not start Celery beat.")
        parser.add_argument("--grace", type=float, default=20.0, help="Seconds to wait for a graceful stop.")

    def handle(self, *args, **opts) -> None:  # type: ignore[no-untyped-def]
        host, port = _split_bind(opts["bind"])
        python = sys.executable
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        children: list[Child] = []

        if settings.PRODUCTION:
            metrics_dir = Path(settings.VAR_DIR) / "prometheus"
            shutil.rmtree(metrics_dir, ignore_errors=True)
            metrics_dir.mkdir(parents=True)
            env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
            watch_host, watch_port = _split_bind(opts["watch_bind"])
            children.append(
                Child(
                    "web",
                    [
                        python,
                        "-m",
                        "gunicorn",
                        "controlplane.wsgi:application",
                        "-c",
                        "python:controlplane.gunicorn_conf",
                        "-b",
                        f"{host}:{port}",
                        "-w",
                        str(opts["web_workers"]),
                    ],
                    env,
                )
            )
            children.append(
                Child(
                    "watch",
                    [
                        python,
                        "-m",
                        "uvicorn",
                        "controlplane.asgi:application",
                        "--host",
                        watch_host,
                        "--port",
                        watch_port,
                        "--no-access-log",
                        "--lifespan",
                        "off",
                    ],
                    env,
                )
            )
        else:
            # Embedded: one ASGI process serves every route, the watch path included, on one port.
            children.append(
                Child(
                    "web",
                    [
                        python,
                        "-m",
                        "uvicorn",
                        "controlplane.asgi:application",
                        "--host",
                        host,
                        "--port",
                        port,
                        "--no-access-log",
                        "--lifespan",
                        "off",
                    ],
                    env,
                )
            )
        if not opts["no_worker"]:
            children.append(
                Child(
                    "worker",
                    [
                        python,
                        "-m",
                        "celery",
                        "-A",
                        "controlplane",
                        "worker",
                        "-l",
                        "info",
                        "-c",
                        str(opts["worker_concurrency"]),
                        "--without-gossip",
                        "--without-mingle",
                    ],
                    env,
                )
            )
        if not opts["no_beat"]:
            children.append(
                Child(
                    "beat",
                    [
                        python,
                        "-m",
                        "celery",
                        "-A",
                        "controlplane",
                        "beat",
                        "-l",
                        "info",
                        "--pidfile=",
                        "-s",
                        str(Path(settings.VAR_DIR) / "celerybeat-schedule"),
                    ],
                    env,
                )
            )
        mode = "production" if settings.PRODUCTION else "embedded"
        self.stdout.write(f"serve: {mode} mode, web on http://{host}:{port}/ (admin at /admin/)")
        status = Supervisor(children, grace=opts["grace"], out=self.stdout).run()
        if status:
            raise SystemExit(status)
