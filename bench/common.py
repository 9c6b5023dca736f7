"""Shared benchmark plumbing: production-mode environment, gunicorn, wrk, medians.

Benchmarks run in production mode (gunicorn + PostgreSQL + Redis) on loopback, each side by side with
its anchor in the same run, and report medians of several runs and the ratio.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
sys.path.insert(0, str(ROOT))

from controlplane import commandlines  # noqa: E402 - the command lines serve runs, defined once

BENCH_DB = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/controlplane_bench")
BENCH_REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/10")


def ensure_debian_packages(*packages: str) -> None:
    """apt-get install what a benchmark needs (wrk, nginx-light, etcd-server, ...) when missing."""
    binaries = {
        "wrk": "wrk",
        "nginx-light": "nginx",
        "etcd-server": "etcd",
        "prometheus-blackbox-exporter": "prometheus-blackbox-exporter",
    }
    missing = [p for p in packages if shutil.which(binaries.get(p, p)) is None]
    if missing:
        subprocess.run(["apt-get", "update", "-qq"], check=False, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, stdout=subprocess.DEVNULL)


def production_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=BENCH_DB,
        REDIS_URL=BENCH_REDIS,
        CELERY_BROKER_URL=BENCH_REDIS.rsplit("/", 1)[0] + "/11",
        SECRET_KEY="bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        CONFIG_ENCRYPTION_KEY="KpRDeMPy7aK4WPSoY60LaIeFfUlKnGQoxEfZIs5Hdjk=",
        SECURE_SSL_REDIRECT="false",
        ALLOWED_HOSTS="*",
        LOG_LEVEL="warning",
        CONTROLPLANE_VAR_DIR=str(ROOT / "var" / "bench"),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def prepare_database(env: dict[str, str]) -> None:
    """Create the bench database if needed and migrate it."""
    name = BENCH_DB.rsplit("/", 1)[1]
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"CREATE DATABASE {name}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], env=env, cwd=ROOT, check=True)


def manage_shell(env: dict[str, str], code: str) -> str:
    """Run Python in a configured Django process; returns its stdout (stripped)."""
    script = "import django; django.setup()\n" + code
    out = subprocess.run([PYTHON, "-c", script], env=env, cwd=ROOT, check=True, capture_output=True, text=True)
    return out.stdout.strip()


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)  # noqa: S310 - loopback
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


@contextmanager
def gunicorn(env: dict[str, str], port: int, workers: int = 2, app: str = "controlplane.wsgi:application"):  # type: ignore[no-untyped-def]
    process = subprocess.Popen(
        commandlines.gunicorn(f"127.0.0.1:{port}", workers=workers, app=app),  # the command serve runs
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        yield process
    finally:
        process.terminate()
        process.wait(20)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(
    url: str,
    *,
    connections: int = 16,
    duration: int = 5,
    headers: dict[str, str] | None = None,
    script: str | None = None,
) -> dict[str, float]:
    """Run `wrk -t1 --latency` and return req/s, p50/p99 (ms) and error counts."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    for name, value in (headers or {}).items():
        cmd += ["-H", f"{name}: {value}"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}
    for pct in ("50", "99"):
        m = re.search(rf"\s{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s)", out)
        result[f"p{pct}_ms"] = float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    result["non2xx"] = float(non2xx.group(1)) if non2xx else 0.0
    result["socket_errors"] = errors.group(0) if errors else ""  # type: ignore[assignment]
    return result


def median_of(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def machine() -> str:
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores, {cpu}, {platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def write_json(name: str, data: dict) -> Path:
    out = ROOT / "var" / "bench-results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps(data, indent=2))
    return path
