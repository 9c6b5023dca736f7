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
from dataclasses import dataclass, field
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

FULL_PATH = "/bench/full/"  # API-key auth, scope check, per-key rate limit, tracing (bench/bench_urls.py)
BARE_PATH = "/bench/bare/"  # the same view with all of that switched off


@dataclass
class Platform:
    """What a run of the platform benchmark needs: the environments of both sides and the API key."""

    env: dict[str, str]
    metrics_dir: Path
    raw_key: str
    bare_env: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.bare_env = {**self.env, "BENCH_BARE": "1"}

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Api-Key {self.raw_key}"}

    def cleanup(self) -> None:
        shutil.rmtree(self.metrics_dir, ignore_errors=True)


def platform_prepare(key_name: str = "bench", **extra_env: str) -> Platform:
    """wrk installed, the bench database migrated, an API key allowed to read events at any rate.

    As `manage.py serve` runs it: access log at info (written, then discarded by the harness) and
    multiprocess Prometheus metrics, so the full stack pays for everything it does in production.
    """
    ensure_debian_packages("wrk")
    metrics_dir = Path(tempfile.mkdtemp(prefix="bench-metrics-"))
    env = production_env(
        DJANGO_SETTINGS_MODULE="bench.bench_settings",
        LOG_LEVEL="info",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        **extra_env,
    )
    prepare_database(env)
    raw_key = manage_shell(
        env,
        "from controlplane.access.services import api_key_create\n"
        f"k, raw = api_key_create(name={key_name!r}, scopes=['events:read'], rate='100000000/h')\nprint(raw)",
    )
    return Platform(env=env, metrics_dir=metrics_dir, raw_key=raw_key)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    platform = platform_prepare()
    full, bare = [], []
    for run in range(args.runs):
        with gunicorn(platform.env, 18001):
            full_url = f"http://127.0.0.1:18001{FULL_PATH}"
            wrk(full_url, connections=args.connections, duration=1, headers=platform.auth)  # warm-up
            full.append(wrk(full_url, connections=args.connections, duration=args.duration, headers=platform.auth))
        with gunicorn(platform.bare_env, 18002):
            bare_url = f"http://127.0.0.1:18002{BARE_PATH}"
            wrk(bare_url, connections=args.connections, duration=1)
            bare.append(wrk(bare_url, connections=args.connections, duration=args.duration))
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
    platform.cleanup()
    write_json("platform_api", result)
    print(
        f"full stack: {result['full']['rps']:.0f} req/s p50 {result['full']['p50_ms']:.2f} ms p99 {result['full']['p99_ms']:.2f} ms\n"
        f"bare view:  {result['bare']['rps']:.0f} req/s p50 {result['bare']['p50_ms']:.2f} ms p99 {result['bare']['p99_ms']:.2f} ms\n"
        f"ratio full/bare (median of {args.runs}): {result['ratio_median']:.2f}  (target >= 0.70)"
    )


if __name__ == "__main__":
    main()
