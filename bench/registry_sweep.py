"""Health-check sweep throughput: the registry's Celery worker vs Prometheus blackbox_exporter.

Production mode (PostgreSQL, Redis broker, Celery worker + beat) on loopback. Per run:
  1. blackbox_exporter /probe driven by wrk at BENCH_CONCURRENCY connections (HTTP, then TCP), against nginx;
  2. the registry with 10,000 checks of the same kind on a 1 s interval (always due) against the same
     nginx, worker `-c 2` with BENCH_CONCURRENCY/2 probes in flight per process; checks/s = results
     persisted per second over the window;
  3. a lag run: 10,000 HTTP checks on a 10 s interval (about 1,000 checks/s), dispatcher lag p99 from the
     `registry_dispatch_lag_seconds` histogram (probe start minus `next_run_at`) and worker RSS.
Median of BENCH_RUNS runs. Usage: .venv/bin/python bench/registry_sweep.py  (ports 18100-18199).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PYTHON, ROOT, ensure_debian_packages, machine, write_json, wrk  # noqa: E402
from controlplane import commandlines  # noqa: E402

NGINX_PORT, BLACKBOX_PORT = 18100, 18101
CHECKS = int(os.environ.get("BENCH_CHECKS", "10000"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "64"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
STARTUP = float(os.environ.get("BENCH_STARTUP", "6"))
WARMUP, WINDOW = float(os.environ.get("BENCH_WARMUP", "6")), float(os.environ.get("BENCH_WINDOW", "12"))
DB_URL = os.environ.get("BENCH_REGISTRY_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/cp_registry_bench")
WORK = Path(tempfile.mkdtemp(prefix="cp-registry-bench-"))
METRICS_DIR = WORK / "metrics"


def env() -> dict[str, str]:
    e = dict(os.environ)
    e.update(
        DJANGO_SETTINGS_MODULE="bench.registry_settings",
        DATABASE_URL=DB_URL,
        REDIS_URL="redis://127.0.0.1:6379/2",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/3",
        SECRET_KEY="bench-only-secret-key-registry-0123456789abcdefghijkl",
        CONFIG_ENCRYPTION_KEY="KpRDeMPy7aK4WPSoY60LaIeFfUlKnGQoxEfZIs5Hdjk=",
        SECURE_SSL_REDIRECT="false",
        ALLOWED_HOSTS="*",
        LOG_LEVEL="warning",
        CONTROLPLANE_VAR_DIR=str(WORK / "var"),
        PROMETHEUS_MULTIPROC_DIR=str(METRICS_DIR),
        BENCH_BATCH_CONCURRENCY=str(max(1, CONCURRENCY // 2)),
        PYTHONUNBUFFERED="1",
    )
    return e


def django_setup() -> None:
    os.environ.update({k: v for k, v in env().items() if k != "PROMETHEUS_MULTIPROC_DIR"})
    import django

    django.setup()


@contextmanager
def process(cmd: list[str], **kwargs):  # type: ignore[no-untyped-def]
    log = open(WORK / f"{Path(cmd[0]).name}-{time.monotonic_ns()}.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, **kwargs)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def memory_mb(pid: int) -> tuple[float, float]:
    """RSS and PSS of a process and its children (the prefork pool), in MB.

    RSS counts pages shared after fork once per process; PSS splits them, so it is the real footprint.
    """
    children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout.split()
    rss = pss = 0
    for p in [pid, *map(int, children)]:
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except OSError:
            pass
    return round(rss / 1024, 1), round(pss / 1024, 1)


def load_checks(kind: str, interval: float, spread: bool) -> None:
    """Replace the registry's contents with CHECKS checks of `kind` on nginx, already passing.

    The sweep is measured in steady state: a target that stays up produces no transitions, so no events.
    """
    from datetime import timedelta

    from django.utils import timezone

    from registry.models import Check, CheckResult, Instance, Service

    CheckResult.objects.all().delete()
    Service.objects.all().delete()
    service = Service.objects.create(name="bench", type="http_api")
    instances = Instance.objects.bulk_create(
        [
            Instance(service=service, instance_id=f"i{n}", address="127.0.0.1", port=NGINX_PORT, status="passing")
            for n in range(CHECKS // 10)
        ]
    )
    now = timezone.now() + timedelta(seconds=2)
    checks = []
    for n in range(CHECKS):
        offset = (n % 1000) / 1000 * interval if spread else 0
        checks.append(
            Check(
                instance=instances[n % len(instances)],
                name=f"c{n}",
                kind=kind,
                path="/",
                interval=interval,
                timeout=min(interval, 2),
                next_run_at=now + timedelta(seconds=offset),
                status="passing",
                enabled=False,  # switched on by `activate` once the worker is up
            )
        )
    Check.objects.bulk_create(checks, batch_size=2000)
    from django.db import connection

    with connection.cursor() as cursor:  # fresh planner statistics, as autovacuum would have in steady state
        cursor.execute("ANALYZE registry_check; ANALYZE registry_instance; ANALYZE registry_checkresult")


def activate(interval: float, spread: bool) -> None:
    """Enable every check, due now (or spread evenly over one interval), after the worker has started."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE registry_check SET enabled = true, next_run_at = now() + make_interval(secs => %s * (id %% 1000) / 1000.0)",
            [interval if spread else 0.0],
        )


def results_between(start: float, end: float) -> int:
    from datetime import UTC, datetime

    from registry.models import CheckResult

    return CheckResult.objects.filter(
        created_at__gte=datetime.fromtimestamp(start, UTC), created_at__lt=datetime.fromtimestamp(end, UTC)
    ).count()


def lag_histogram() -> dict[float, float]:
    """Cumulative bucket counts of the dispatch-lag histogram, merged across worker processes."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(METRICS_DIR))
    buckets: dict[float, float] = {}
    for family in registry.collect():
        if family.name == "registry_dispatch_lag_seconds":
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    bound = float(sample.labels["le"])
                    buckets[bound] = buckets.get(bound, 0) + sample.value
    return buckets


def quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """histogram_quantile over the window (linear within the bucket, like Prometheus)."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0) for b in bounds]
    total = counts[-1]
    if total <= 0:
        return float("nan")
    rank, lower, previous = q * total, 0.0, 0.0
    for bound, cumulative in zip(bounds, counts, strict=True):
        if cumulative >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - previous) / max(cumulative - previous, 1e-9)
        lower, previous = bound, cumulative
    return bounds[-2]


def registry_run(kind: str, interval: float, spread: bool) -> dict[str, float]:
    load_checks(kind, interval, spread)
    shutil.rmtree(METRICS_DIR, ignore_errors=True)
    METRICS_DIR.mkdir(parents=True)
    subprocess.run(["redis-cli", "-n", "3", "flushdb"], check=True, stdout=subprocess.DEVNULL)
    # serve's worker and beat command lines (controlplane/commandlines.py); one worker on every queue, as
    # when the recorded figures were measured.
    worker_cmd = commandlines.celery_worker(concurrency=2, name="bench-registry", loglevel="warning")
    beat_cmd = commandlines.celery_beat(schedule=WORK / "beat", loglevel="warning")
    with process(worker_cmd, env=env()) as worker, process(beat_cmd, env=env()):
        time.sleep(STARTUP)
        activate(interval, spread)
        time.sleep(WARMUP)
        lag_before, start = lag_histogram(), time.time()
        time.sleep(WINDOW)
        end = time.time()
        time.sleep(1.5)  # let in-flight batches of the window commit
        (rss, pss), lag_after = memory_mb(worker.pid), lag_histogram()
    done = results_between(start, end)
    return {
        "checks_per_s": round(done / (end - start), 1),
        "lag_p99_s": round(quantile(lag_before, lag_after, 0.99), 3),
        "lag_p50_s": round(quantile(lag_before, lag_after, 0.50), 3),
        "worker_rss_mb": rss,
        "worker_pss_mb": pss,
    }


def main() -> None:
    ensure_debian_packages("wrk", "nginx-light", "prometheus-blackbox-exporter")
    METRICS_DIR.mkdir(parents=True, exist_ok=True)
    name = DB_URL.rsplit("/", 1)[1]
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"CREATE DATABASE {name}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], env=env(), cwd=ROOT, check=True)
    django_setup()
    nginx_conf = WORK / "nginx.conf"
    nginx_conf.write_text(
        f"worker_processes 1; pid {WORK}/nginx.pid; error_log {WORK}/nginx-error.log; daemon off;\n"
        "events { worker_connections 4096; }\n"
        f'http {{ access_log off; server {{ listen 127.0.0.1:{NGINX_PORT}; location / {{ return 200 \'{{"status":"ok"}}\'; }} }} }}\n'
    )
    blackbox_conf = ROOT.parent / "shared" / "bench-anchors" / "blackbox.yml"
    if not blackbox_conf.exists():
        blackbox_conf = WORK / "blackbox.yml"
        blackbox_conf.write_text(
            "modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n    http:\n      preferred_ip_protocol: ip4\n"
            "  tcp_connect:\n    prober: tcp\n    timeout: 5s\n    tcp:\n      preferred_ip_protocol: ip4\n"
        )
    runs = []
    with (
        process(["nginx", "-c", str(nginx_conf)]),
        process(
            [
                "prometheus-blackbox-exporter",
                f"--config.file={blackbox_conf}",
                f"--web.listen-address=127.0.0.1:{BLACKBOX_PORT}",
            ]
        ),
    ):
        time.sleep(1.0)
        probe = f"http://127.0.0.1:{BLACKBOX_PORT}/probe"
        for run in range(RUNS):
            row: dict[str, float] = {}
            row["blackbox_http"] = wrk(
                f"{probe}?target=http://127.0.0.1:{NGINX_PORT}/&module=http_2xx", connections=CONCURRENCY
            )["rps"]
            row["blackbox_tcp"] = wrk(
                f"{probe}?target=127.0.0.1:{NGINX_PORT}&module=tcp_connect", connections=CONCURRENCY
            )["rps"]
            http = registry_run("http", 1, spread=False)
            tcp = registry_run("tcp", 1, spread=False)
            lag = registry_run("http", 10, spread=True)
            row.update(
                registry_http=http["checks_per_s"],
                registry_tcp=tcp["checks_per_s"],
                http_rss_mb=http["worker_rss_mb"],
                http_pss_mb=http["worker_pss_mb"],
                http_lag_p99_s=http["lag_p99_s"],
                lag_rate=lag["checks_per_s"],
                lag_p99_s=lag["lag_p99_s"],
                lag_p50_s=lag["lag_p50_s"],
                lag_rss_mb=lag["worker_rss_mb"],
                lag_pss_mb=lag["worker_pss_mb"],
            )
            print(f"run {run + 1}: {json.dumps(row)}", flush=True)
            runs.append(row)
    summary = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    # The ratio is taken within each run (same machine state for both sides), then the median over runs.
    summary["http_ratio"] = round(statistics.median(r["registry_http"] / r["blackbox_http"] for r in runs), 2)
    summary["tcp_ratio"] = round(statistics.median(r["registry_tcp"] / r["blackbox_tcp"] for r in runs), 2)
    result = {"machine": machine(), "checks": CHECKS, "concurrency": CONCURRENCY, "runs": runs, "median": summary}
    print(json.dumps(result, indent=2))
    write_json("registry_sweep", result)
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
