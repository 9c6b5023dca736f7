"""Platform benchmark: an authenticated, rate-limited GET under the full middleware stack vs. the same
view with auth, rate limiting and tracing switched off, in the same run (gunicorn -w 2, PostgreSQL,
Redis, wrk -t1 -c16 -d5s as the Django baseline anchor). Target: full >= 0.7 x bare req/s.

Run: .venv/bin/python bench/platform_api.py [--runs 3] [--duration 5]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    ensure_debian_packages,
    gunicorn,
    machine,
    manage_shell,
    median_of,
    prepare_database,
    production_env,
    write_json,
    wrk,
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    ensure_debian_packages("wrk")

    # As `manage.py serve` runs it: access log at info (written, then discarded by the harness) and
    # multiprocess Prometheus metrics, so the full stack pays for everything it does in production.
    metrics_dir = Path(tempfile.mkdtemp(prefix="bench-metrics-"))
    env = production_env(
        DJANGO_SETTINGS_MODULE="bench.bench_settings", LOG_LEVEL="info", PROMETHEUS_MULTIPROC_DIR=str(metrics_dir)
    )
    prepare_database(env)
    raw_key = manage_shell(
        env,
        "from controlplane.access.services import api_key_create\n"
        "k, raw = api_key_create(name='bench', scopes=['events:read'], rate='100000000/h')\nprint(raw)",
    )
    full_env = env
    bare_env = {**env, "BENCH_BARE": "1"}
    full, bare = [], []
    for run in range(args.runs):
        with gunicorn(full_env, 18001):
            wrk(
                "http://127.0.0.1:18001/bench/full/",
                connections=args.connections,
                duration=1,
                headers={"Authorization": f"Api-Key {raw_key}"},
            )  # warm-up
            full.append(
                wrk(
                    "http://127.0.0.1:18001/bench/full/",
                    connections=args.connections,
                    duration=args.duration,
                    headers={"Authorization": f"Api-Key {raw_key}"},
                )
            )
        with gunicorn(bare_env, 18002):
            wrk("http://127.0.0.1:18002/bench/bare/", connections=args.connections, duration=1)
            bare.append(wrk("http://127.0.0.1:18002/bench/bare/", connections=args.connections, duration=args.duration))
        print(f"run {run + 1}: full {full[-1]['rps']:.0f} req/s, bare {bare[-1]['rps']:.0f} req/s", flush=True)

    ratios = sorted(f["rps"] / b["rps"] for f, b in zip(full, bare, strict=True))
    result = {
        "machine": machine(),
        "full": {k: median_of(full, k) for k in ("rps", "p50_ms", "p99_ms", "non2xx")},
        "bare": {k: median_of(bare, k) for k in ("rps", "p50_ms", "p99_ms", "non2xx")},
        "ratio_median": ratios[len(ratios) // 2],
        "ratios": ratios,
        "runs": args.runs,
    }
    shutil.rmtree(metrics_dir, ignore_errors=True)
    write_json("platform_api", result)
    print(
        f"full stack: {result['full']['rps']:.0f} req/s p50 {result['full']['p50_ms']:.2f} ms p99 {result['full']['p99_ms']:.2f} ms\n"
        f"bare view:  {result['bare']['rps']:.0f} req/s p50 {result['bare']['p50_ms']:.2f} ms p99 {result['bare']['p99_ms']:.2f} ms\n"
        f"ratio full/bare (median of {args.runs}): {result['ratio_median']:.2f}  (target >= 0.70)"
    )


if __name__ == "__main__":
    main()
