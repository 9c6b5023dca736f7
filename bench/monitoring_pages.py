"""Dashboard and status page benchmark: server time p50/p99 and SQL queries per page at 100 and 10,000 services,
and SSE fan-out (500 open dashboard streams on one uvicorn process, one stored transition reaching all).

Dataset per size (PostgreSQL, production mode), generated here and rolled up by the project's own code:
N services, one instance each with two checks (20,000 checks at 10,000 services), 50 results per check over
the last 50 minutes (1,000,000 results at 10,000) written as the registry's bulk insert would, then
`monitoring.services.rollups.rollups_run` (the beat task's body) computes the minute/hour points. Older
history (89 days of day points per service) is inserted as the day roll-up leaves it, with its watermark.
Plus 2 % critical and 3 % warning instances, 10,000 events, 100 firing alerts, 20 silences, 10 maintenance
windows, 5 incidents and 25 public services (the same at both sizes).

Server time = the Django handler with every middleware (django.test.Client in this process, no network);
CPU = the process time of the same requests (what a busy machine cannot hide). Each page is measured in
`--runs` rounds, pages interleaved; the figures are the median over rounds of each round's p50/p99.
The status page three ways: `status_uncached` = its page cache entry deleted before each request (what the
one visitor per cache period meets; the final days of the bars stay cached), `status_cold` = the whole
cache cleared (after a deploy or a flush), `status_cached` = what every other visitor gets.

Run: .venv/bin/python bench/monitoring_pages.py [--sizes 100,10000] [--requests 60] [--runs 3] [--streams 500]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PYTHON, ROOT, machine, production_env, wait_http, write_json  # noqa: E402

DB = os.environ.get("BENCH_PAGES_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/cp_w2f_bench")
REDIS = os.environ.get("BENCH_PAGES_REDIS_URL", "redis://127.0.0.1:6379/12")
PUBLIC = 25


def environment() -> dict[str, str]:
    base, number = REDIS.rsplit("/", 1)
    return production_env(
        DATABASE_URL=DB,
        REDIS_URL=REDIS,
        CELERY_BROKER_URL=f"{base}/{int(number) + 1}",
        CONTROLPLANE_VAR_DIR=str(ROOT / "var" / "bench-pages"),
        MONITORING_REQUEST_METRICS="false",
    )


def prepare(env: dict[str, str]) -> None:
    name = DB.rsplit("/", 1)[1]
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"CREATE DATABASE {name}"],
        capture_output=True,
        check=False,
    )
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], env=env, cwd=ROOT, check=True)


def build(services: int) -> dict[str, int]:
    """The dataset above; returns what was written."""
    from django.db import connection
    from django.utils import timezone

    from controlplane.events.models import Event
    from monitoring.models import (
        AlertRule,
        AlertState,
        Incident,
        MaintenanceWindow,
        RollupWatermark,
        Silence,
        StatusPageService,
    )
    from monitoring.points import floor_time
    from monitoring.services import rollups
    from registry.models import Check, Instance, Service

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE monitoring_metricpoint, monitoring_metricseries, monitoring_rollupwatermark, monitoring_alertstate, "
            "monitoring_alertrule CASCADE; TRUNCATE monitoring_silence, monitoring_maintenancewindow, monitoring_incident, "
            "monitoring_statuspageservice, events_event, registry_checkresult, registry_check, registry_instance, "
            "registry_service CASCADE"
        )
    now = timezone.now()
    began = time.perf_counter()
    rows = Service.objects.bulk_create(
        [Service(name=f"svc-{n:05d}", display_name=f"Service {n}", owner=f"team-{n % 40}") for n in range(services)],
        batch_size=5000,
    )
    status = ["critical" if n % 50 == 0 else "warning" if n % 33 == 0 else "passing" for n in range(services)]
    instances = Instance.objects.bulk_create(
        [
            Instance(service=s, instance_id="i-1", address="10.0.0.1", port=8000, status=status[n])
            for n, s in enumerate(rows)
        ],
        batch_size=5000,
    )
    Check.objects.bulk_create(
        [
            Check(
                instance=i,
                name=name,
                kind="http",
                interval=60,
                timeout=2,
                status=status[n] if name == "http" else "passing",
                last_result_at=now,
            )
            for n, i in enumerate(instances)
            for name in ("http", "tcp")
        ],
        batch_size=5000,
    )
    start = floor_time(now - timedelta(minutes=52), 60)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO registry_checkresult (health_check_id, created_at, status, latency_ms, output) "
            "SELECT c.id, %s::timestamptz + make_interval(secs => s * 60 + (c.id %% 60)), "
            "CASE WHEN (c.id + s) %% 50 = 0 THEN 'critical' ELSE 'passing' END, 5 + (c.id * 7 + s * 13) %% 245, '' "
            "FROM registry_check c CROSS JOIN generate_series(0, 49) AS s",
            [start],
        )
        cursor.execute("ANALYZE registry_checkresult")
    results = services * 2 * 50
    print(
        f"  {services:,} services: catalog and {results:,} results in {time.perf_counter() - began:.1f} s", flush=True
    )
    began = time.perf_counter()
    RollupWatermark.objects.create(name="minute", position=start)
    done = rollups.rollups_run(now=now)
    while done["minutes"]:
        done = rollups.rollups_run(now=now)
    print(f"  roll-ups (project code) in {time.perf_counter() - began:.1f} s", flush=True)
    today = floor_time(now, 86400)
    with connection.cursor() as cursor:
        # 89 earlier days per service, as the day roll-up leaves them: mostly passing, some downtime and maintenance.
        cursor.execute(
            "INSERT INTO monitoring_metricpoint (series_id, resolution, bucket, count, total, min, max, histogram, breakdown) "
            'SELECT s.id, 86400, %s::timestamptz - make_interval(days => d), 2880, 2870, 4, 400, \'{"5": 2000, "7": 880}\'::jsonb, '
            'CASE WHEN (s.id + d) %% 17 = 0 THEN \'{"passing": 82800, "critical": 3600}\'::jsonb '
            'WHEN (s.id + d) %% 29 = 0 THEN \'{"passing": 79200, "maintenance": 7200}\'::jsonb '
            "ELSE '{\"passing\": 86400}'::jsonb END "
            "FROM monitoring_metricseries s CROSS JOIN generate_series(1, 89) AS d "
            "WHERE s.kind = 'service' AND s.metric = 'status' ON CONFLICT DO NOTHING",
            [today],
        )
        cursor.execute("ANALYZE monitoring_metricpoint")
    RollupWatermark.objects.update_or_create(name="day", defaults={"position": today})
    StatusPageService.objects.bulk_create(
        [StatusPageService(service=s, public=n < PUBLIC, position=n) for n, s in enumerate(rows[: PUBLIC * 2])]
    )
    Event.objects.bulk_create(
        [
            Event(
                kind="check.status_changed",
                subject=f"svc-{n % services:05d}/i-1/http",
                data={"service": f"svc-{n % services:05d}", "old": "passing", "new": "critical"},
            )
            for n in range(10000)
        ],
        batch_size=5000,
    )
    rule = AlertRule.objects.create(name="service down", target_kind="service", metric="status")
    AlertState.objects.bulk_create(
        [
            AlertState(
                rule=rule,
                target_key=f"service:{s.pk}",
                fingerprint=f"f{s.pk}",
                status="firing",
                labels={"service": s.name},
                active_since=now,
                firing_since=now,
            )
            for s in rows[:100]
        ]
    )
    Silence.objects.bulk_create(
        [
            Silence(
                matchers=[{"name": "service", "op": "=", "value": f"svc-{n:05d}"}],
                starts_at=now,
                ends_at=now + timedelta(hours=2),
                author="bench",
                comment="c",
            )
            for n in range(20)
        ]
    )
    for n in range(10):
        MaintenanceWindow.objects.create(
            name=f"m{n}",
            scope="service",
            service=rows[n],
            starts_at=now - timedelta(minutes=5),
            ends_at=now + timedelta(hours=1),
        )
    for n in range(5):
        incident = Incident.objects.create(title=f"Incident {n}", started_at=now - timedelta(hours=n + 1))
        incident.services.set([rows[n]])
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return {"services": services, "checks": services * 2, "results": results}


PAGE_CACHE_KEY = "monitoring:status:page"


def measure(client, path: str, requests: int, *, clear: str = "") -> dict[str, float]:  # type: ignore[no-untyped-def]
    """One round: `requests` timed GETs after 3 warm-ups; `clear` = "" | "page" (status page entry) | "all"."""
    from django.core.cache import cache
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def before() -> None:
        if clear == "all":
            cache.clear()
        elif clear == "page":
            cache.delete(PAGE_CACHE_KEY)

    times, cpu = [], []
    for index in range(requests + 3):
        before()
        began, began_cpu = time.perf_counter(), time.process_time()
        response = client.get(path)
        elapsed, elapsed_cpu = (time.perf_counter() - began) * 1000, (time.process_time() - began_cpu) * 1000
        assert response.status_code == 200, (path, response.status_code)
        if index >= 3:  # warm-up excluded
            times.append(elapsed)
            cpu.append(elapsed_cpu)
    before()
    with CaptureQueriesContext(connection) as captured:
        client.get(path)
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 1),
        "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 1),
        "cpu_p50_ms": round(statistics.median(cpu), 1),
        "queries": len(captured.captured_queries),
    }


def rounds(results: list[dict[str, float]]) -> dict:
    """The median over rounds of each figure, and every round's p99."""
    return {
        **{key: round(statistics.median(r[key] for r in results), 1) for key in ("p50_ms", "p99_ms", "cpu_p50_ms")},
        "queries": results[-1]["queries"],
        "p99_rounds": [r["p99_ms"] for r in results],
    }


async def fan_out(port: int, cookie: str, streams: int, transitions: int, trigger) -> dict[str, float]:  # type: ignore[no-untyped-def]
    import aiohttp

    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers={"Cookie": cookie}) as session:
        arrivals: list[list[float]] = [[] for _ in range(streams)]
        ready = asyncio.Event()
        opened = 0

        async def reader(index: int) -> None:
            nonlocal opened
            async with session.get(f"http://127.0.0.1:{port}/dashboard/live/") as response:
                assert response.status == 200, response.status
                async for line in response.content:
                    if line.startswith(b"event: hello"):
                        opened += 1
                        if opened == streams:
                            ready.set()
                    elif line.startswith(b"event: update"):
                        arrivals[index].append(time.time())

        tasks = [asyncio.create_task(reader(i)) for i in range(streams)]
        began = time.perf_counter()
        await asyncio.wait_for(ready.wait(), 120)
        open_seconds = time.perf_counter() - began
        latencies = []
        for n in range(transitions):
            await asyncio.sleep(1.5)
            before = [len(a) for a in arrivals]
            stored = await asyncio.to_thread(trigger, n)
            deadline = time.time() + 10
            while time.time() < deadline and any(len(a) <= b for a, b in zip(arrivals, before, strict=True)):
                await asyncio.sleep(0.01)
            latencies += [a[b] - stored for a, b in zip(arrivals, before, strict=True) if len(a) > b]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    latencies.sort()
    expected = streams * transitions
    return {
        "streams": streams,
        "transitions": transitions,
        "delivered": len(latencies),
        "expected": expected,
        "open_all_seconds": round(open_seconds, 2),
        "p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "p99_s": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 3) if latencies else None,
        "max_s": round(latencies[-1], 3) if latencies else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100,10000")
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--runs", type=int, default=3, help="rounds per page (pages interleaved); medians reported")
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--transitions", type=int, default=5)
    parser.add_argument(
        "--reuse", action="store_true", help="measure a size already in the database without rebuilding it"
    )
    args = parser.parse_args()
    env = environment()
    prepare(env)
    os.environ.update(env)
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.test import Client

    from controlplane import commandlines
    from controlplane.events.services import emit
    from registry.models import Service

    out: dict = {"machine": machine(), "public_services": PUBLIC, "sizes": {}}
    for size in [int(s) for s in args.sizes.split(",") if s]:
        print(f"size {size:,}", flush=True)
        if args.reuse and Service.objects.count() == size:
            data = {"services": size, "checks": size * 2, "results": size * 2 * 50, "reused": True}
        else:
            data = build(size)
        user, _ = get_user_model().objects.get_or_create(
            username="bench", defaults={"is_staff": True, "is_superuser": True}
        )
        client = Client()
        client.force_login(user)
        anonymous = Client()
        pages = {  # name -> (client, path, requests, what to clear before each request)
            "overview": (client, "/dashboard/", args.requests, ""),
            "overview_search": (client, "/dashboard/?q=svc-0999&status=passing", args.requests, ""),
            "service": (client, "/dashboard/services/svc-00050/", args.requests, ""),
            "alerts": (client, "/dashboard/alerts/", args.requests, ""),
            "status_uncached": (anonymous, "/status/", args.requests, "page"),
            "status_cold": (anonymous, "/status/", args.requests, "all"),
            "status_cached": (anonymous, "/status/", args.requests * 5, ""),
            "badge_cached": (anonymous, "/status/badge/svc-00001.svg", args.requests * 5, ""),
        }
        load = [round(os.getloadavg()[0], 2)]
        results: dict[str, list[dict[str, float]]] = {name: [] for name in pages}
        for _ in range(args.runs):
            for name, (who, path, requests, clear) in pages.items():
                results[name].append(measure(who, path, requests, clear=clear))
            load.append(round(os.getloadavg()[0], 2))
        figures = {name: rounds(found) for name, found in results.items()}
        data["load_average_1m"] = load
        out["sizes"][size] = {**data, "pages": figures}
        print(f"  load average (1 min) before and after each round: {load}", flush=True)
        for name, row in figures.items():
            print(
                f"  {name:18} p50 {row['p50_ms']:8.1f} ms  p99 {row['p99_ms']:8.1f} ms  cpu p50 {row['cpu_p50_ms']:7.1f} ms"
                f"  {row['queries']:3d} queries  (p99 per round {row['p99_rounds']})",
                flush=True,
            )

    if args.streams:
        port = 18766
        log = open(ROOT / "var" / "bench-pages" / "uvicorn.log", "w")  # noqa: SIM115
        server = subprocess.Popen(
            commandlines.uvicorn("127.0.0.1", port), env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
            client = Client()
            client.force_login(get_user_model().objects.get(username="bench"))
            from django.conf import settings

            cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
            service = Service.objects.order_by("pk").first()
            from django.db import close_old_connections, transaction

            def trigger(n: int) -> float:
                close_old_connections()
                with transaction.atomic():
                    event = emit(
                        "instance.status_changed",
                        subject=f"{service.name}/i-1",
                        data={
                            "service": service.name,
                            "old": "passing",
                            "new": "critical" if n % 2 == 0 else "passing",
                        },
                    )
                return event.created_at.timestamp()  # stored = committed on return

            out["fan_out"] = asyncio.run(fan_out(port, cookie, args.streams, args.transitions, trigger))
            print(f"  fan-out {out['fan_out']}", flush=True)
        finally:
            server.terminate()
            server.wait(20)
    path = write_json("monitoring_pages", out)
    print(f"written {path}")


if __name__ == "__main__":
    main()
