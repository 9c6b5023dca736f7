"""Soak of the embedded default: `serve` on SQLite and the filesystem broker under the demo load.

Issue #10 point 8: after ~5 minutes of `make run` the worker died with JSONDecodeError inside kombu's
filesystem transport. This runs a fresh `migrate && bootstrap && serve` in its own data directory with the
demo data (beat probing every second, housekeeping sweeps) plus extra load: async pipeline runs through
the API and tasks published straight to every queue with known ids. At the end it counts, from the
workers' own log lines, every published task that succeeded, and reports sent / succeeded / lost, worker
restarts and tracebacks. Exit status 1 when anything was lost, restarted or crashed.

    .venv/bin/python bench/soak_embedded.py --minutes 6      (or: make soak)
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

# Harmless real tasks, one per queue kind: missing delivery ids are ignored by the services.
PUBLISHED = (
    ("registry.tasks.dispatch_due_checks", []),
    ("controlplane.delivery.deliver", ["webhook", 2_000_000_000]),
    ("controlplane.delivery.deliver", ["pipeline", 2_000_000_000]),
    ("pipelines.stats_flush", []),
)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _request(url: str, key: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, headers={"Authorization": f"Api-Key {key}", "Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, {}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=6.0)
    parser.add_argument("--rate", type=float, default=20.0, help="tasks published per second")
    parser.add_argument("--var-dir", default=str(ROOT / "var" / "soak"))
    args = parser.parse_args()

    var_dir = Path(args.var_dir)
    shutil.rmtree(var_dir, ignore_errors=True)
    var_dir.mkdir(parents=True)
    port = _free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}  # the embedded default
    }
    env.update(
        CONTROLPLANE_VAR_DIR=str(var_dir),
        CONTROLPLANE_PUBLIC_URL=f"http://127.0.0.1:{port}",  # the demo service probes this control plane
        CELERY_TASK_LOG_LEVEL="info",  # one line per task received/succeeded: what is counted below
        PYTHONUNBUFFERED="1",
    )
    for command in (["migrate", "--noinput", "-v", "0"], ["bootstrap"]):
        subprocess.run([PYTHON, "manage.py", *command], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    log_path = var_dir / "serve.log"
    log = open(log_path, "w")  # noqa: SIM115
    serve = subprocess.Popen(
        [PYTHON, "manage.py", "serve", "--bind", f"127.0.0.1:{port}"], cwd=ROOT, env=env, stdout=log, stderr=log
    )

    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
    django.setup()
    from controlplane.celery import app

    deadline = time.monotonic() + 90
    key = None
    while time.monotonic() < deadline and key is None:
        match = re.search(r"API key \(every scope\):\s+(\S+)", log_path.read_text())
        key = match.group(1) if match else None
        time.sleep(0.5)
    if key is None:
        print(log_path.read_text()[-3000:])
        serve.kill()
        return 2
    base = f"http://127.0.0.1:{port}"
    _, pipelines = _request(f"{base}/api/v1/pipelines/", key)
    slugs = [p["slug"] for p in pipelines.get("results", [])]

    sent: list[str] = []
    runs_submitted = 0
    started = time.monotonic()
    end = started + args.minutes * 60
    kinds = itertools.cycle(PUBLISHED)
    next_run = started
    counter = itertools.count()
    print(f"soak: {args.minutes} min at {args.rate}/s published + 1 async pipeline run/s; log {log_path}")
    while time.monotonic() < end:
        name, task_args = next(kinds)
        task_id = f"soak-{next(counter)}"
        app.send_task(name, args=task_args, task_id=task_id)
        sent.append(task_id)
        if slugs and time.monotonic() >= next_run:
            next_run += 1.0
            status, _ = _request(
                f"{base}/api/v1/pipelines/{slugs[runs_submitted % len(slugs)]}/run/?async=true",
                key,
                {"payload": {"n": runs_submitted}},
            )
            runs_submitted += status == 202
        time.sleep(1 / args.rate)
    print("soak: load done, draining for 30 s")
    succeeded: set[str] = set()
    drain_end = time.monotonic() + 30
    while time.monotonic() < drain_end:
        succeeded = set(re.findall(r"\[(soak-\d+)\] succeeded", log_path.read_text()))
        if len(succeeded) >= len(sent):
            break
        time.sleep(1)
    serve.send_signal(signal.SIGTERM)
    serve.wait(timeout=60)
    log.close()
    output = log_path.read_text()
    succeeded = set(re.findall(r"\[(soak-\d+)\] succeeded", output))
    from django.db.models import Count

    from pipelines.models import Run, RunMode

    runs = dict(Run.objects.filter(mode=RunMode.ASYNC).values_list("status").annotate(n=Count("id")))
    result = {
        "minutes": round((time.monotonic() - started) / 60, 1),
        "tasks_sent": len(sent),
        "tasks_succeeded": len(succeeded & set(sent)),
        "tasks_lost": len(set(sent) - succeeded),
        "async_runs_submitted": runs_submitted,
        "async_runs_by_status": runs,
        "worker_restarts": len(re.findall(r"exited with -?\d+ after", output)),
        "json_decode_errors": output.count("JSONDecodeError"),
        "tracebacks": output.count("Traceback (most recent call last)"),
        "serve_exit": serve.returncode,
    }
    out_dir = ROOT / "var" / "bench-results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "soak_embedded.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    bad = result["tasks_lost"] or result["worker_restarts"] or result["json_decode_errors"] or result["serve_exit"]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
