"""Monitoring roll-up benchmark: minute roll-up throughput against the registry's 1,000 check results/s,
and the metric store's measured storage cost per check per day (PostgreSQL, production mode).

A dataset of N checks (one per instance, ten instances per service) probed every `interval` seconds for
`minutes` minutes is written straight into registry_checkresult (as the registry's bulk insert would), then
the roll-ups run over it: minute points per check, instance and service, then hour points. Target: the
minute roll-up processes results faster than 1,000/s arrive (ratio >= 1, the higher the more headroom).

Run: .venv/bin/python bench/monitoring_rollup.py [--checks 10000] [--minutes 10] [--interval 10]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine, prepare_database, production_env, write_json  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checks", type=int, default=10000)
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--interval", type=int, default=10)
    args = parser.parse_args()
    env = production_env()
    prepare_database(env)
    os.environ.update(env)
    import django

    django.setup()
    from django.db import connection

    from monitoring.models import MetricPoint, Resolution, RollupWatermark
    from monitoring.services import rollups
    from registry.models import Check, Instance, Service

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE monitoring_metricpoint, monitoring_metricseries, monitoring_rollupwatermark, "
            "registry_checkresult, registry_check, registry_instance, registry_service CASCADE"
        )
    services = Service.objects.bulk_create(
        [Service(name=f"bench-{n}") for n in range(max(1, args.checks // 10))], batch_size=2000
    )
    instances = Instance.objects.bulk_create(
        [
            Instance(service=services[n // 10], instance_id=f"i-{n}", address="127.0.0.1", port=8000)
            for n in range(args.checks)
        ],
        batch_size=2000,
    )
    Check.objects.bulk_create(
        [Check(instance=i, name="http", kind="http", interval=args.interval, timeout=2) for i in instances],
        batch_size=2000,
    )
    start = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    per_check = args.minutes * 60 // args.interval
    began = time.perf_counter()
    with connection.cursor() as cursor:
        # One result per check every `interval` s, spread over the interval; 1 in 50 fails; latency 5-250 ms.
        cursor.execute(
            "INSERT INTO registry_checkresult (health_check_id, created_at, status, latency_ms, output) "
            "SELECT c.id, %s::timestamptz + make_interval(secs => s * %s + (c.id %% %s)), "
            "CASE WHEN (c.id + s) %% 50 = 0 THEN 'critical' ELSE 'passing' END, 5 + (c.id * 7 + s * 13) %% 245, '' "
            "FROM registry_check c CROSS JOIN generate_series(0, %s - 1) AS s",
            [start, args.interval, args.interval, per_check],
        )
        cursor.execute("ANALYZE registry_checkresult")
    results = args.checks * per_check
    print(f"wrote {results:,} results in {time.perf_counter() - began:.1f} s", flush=True)

    RollupWatermark.objects.create(name="minute", position=start)
    end = start + timedelta(minutes=args.minutes)
    began = time.perf_counter()
    rollups.rollup_minutes(now=end + timedelta(seconds=30))
    minute_seconds = time.perf_counter() - began
    # Storage measured now, the table written once as in steady state (reruns below leave dead tuples).
    minute_rows = MetricPoint.objects.filter(resolution=Resolution.MINUTE).count()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE monitoring_metricpoint")
        cursor.execute("SELECT pg_total_relation_size('monitoring_metricpoint')")
        point_bytes = cursor.fetchone()[0]
        cursor.execute("SELECT pg_total_relation_size('registry_checkresult')")
        result_bytes = cursor.fetchone()[0]
    bytes_per_point = point_bytes / minute_rows
    began = time.perf_counter()
    rollups.rollup_minutes(now=end + timedelta(seconds=30))
    RollupWatermark.objects.filter(name="minute").update(position=start)
    rollups.rollup_minutes(now=end + timedelta(seconds=30))
    rerun_seconds = time.perf_counter() - began
    RollupWatermark.objects.filter(name="minute").update(position=start + timedelta(hours=1))
    began = time.perf_counter()
    rollups.rollup_level(resolution=Resolution.HOUR)
    hour_seconds = time.perf_counter() - began

    hour_rows = MetricPoint.objects.filter(resolution=Resolution.HOUR).count()
    # Per check at steady state under the default retention (48 h minutes, 90 d hours, 2 y days) with one
    # check per instance and ten instances per service: each check brings its own series, its instance's,
    # and a tenth of its service's.
    series_per_check = 1 + 1 + 0.1
    rows_per_series_kept = 2 * 1440 + 90 * 24 + 730
    stored_per_check = series_per_check * rows_per_series_kept * bytes_per_point
    daily_per_check = series_per_check * (1440 + 24 + 1) * bytes_per_point
    raw_per_day = result_bytes / results * (86400 / args.interval)
    rate = results / minute_seconds
    out = {
        "machine": machine(),
        "checks": args.checks,
        "results": results,
        "minute_rollup_seconds": round(minute_seconds, 2),
        "results_per_second": round(rate),
        "ratio_vs_1000_per_second": round(rate / 1000, 1),
        "rerun_seconds_two_runs": round(rerun_seconds, 2),
        # a recompute over series that exist (steady state: series are created once per target)
        "steady_results_per_second": round(results / (rerun_seconds or 1)),
        "hour_rollup_seconds": round(hour_seconds, 2),
        "minute_points": minute_rows,
        "hour_points": hour_rows,
        "bytes_per_point": round(bytes_per_point),
        "written_per_check_per_day_bytes": round(daily_per_check),
        "stored_per_check_steady_bytes": round(stored_per_check),
        "stored_20000_checks_gb": round(stored_per_check * 20000 / 1e9, 2),
        "raw_results_per_check_per_day_bytes": round(raw_per_day),
    }
    write_json("monitoring_rollup", out)
    for key, value in out.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
