"""Batch endpoint benchmark, production mode: gunicorn -w 2 + PostgreSQL + Redis on loopback.

POST /api/v1/pipelines/bench/batch/ with 100 packets of ~1 KB through the six-step pipeline of
bench/pipelines_executor.py (wrk -t1 -c8), next to the Django baseline anchor (the bare DRF view of
bench/bench_urls.py, wrk -t1 -c16) in the same run. Reports packets/s (target >= 5,000), median of runs.

Run: .venv/bin/python bench/pipelines_batch.py [--runs 3] [--duration 5]
Uses ports 18310/18311, Redis DBs 6 and 7 and the PostgreSQL database cp_pipelines_bench.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/cp_pipelines_bench")
os.environ.setdefault("BENCH_REDIS_URL", "redis://127.0.0.1:6379/6")

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

OURS, ANCHOR = 18310, 18311
BATCH = 100

SETUP = """
import json, sys
sys.path.insert(0, "bench")
from pipelines_executor import DEFINITION
from controlplane.access.services import api_key_create
from configstore.models import Namespace
from configstore.services import config_entry_set, namespace_create
from pipelines.models import Pipeline
from pipelines.services import pipeline_create, pipeline_update

namespace = Namespace.objects.filter(name="shop").first() or namespace_create(name="shop", actor="bench")
config_entry_set(namespace=namespace, key="region", value="eu-west", actor="bench")
fields = dict(slug="bench", name="Benchmark", steps=DEFINITION["steps"], actor="bench")
existing = Pipeline.objects.filter(slug="bench").first()
if existing:
    pipeline_update(existing, steps=fields["steps"], actor="bench")
else:
    pipeline_create(**fields)
# config:read: the pipeline enriches from `shop`, and runs are authorized for the config they read.
key, raw = api_key_create(name="bench-pipelines", scopes=["pipelines:run", "config:read"], rate="100000000/h")
print(raw)
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    ensure_debian_packages("wrk")

    env = production_env(
        DJANGO_SETTINGS_MODULE="bench.bench_settings",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/7",
        CONTROLPLANE_VAR_DIR=str(Path(tempfile.gettempdir()) / "cp-bench-pipelines"),
    )
    prepare_database(env)
    raw_key = manage_shell(env, SETUP).splitlines()[-1]

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from pipelines_executor import make_packets

    packets = make_packets(BATCH)
    work = Path(tempfile.mkdtemp(prefix="cp-bench-batch-"))
    body = work / "batch.json"
    body.write_text(json.dumps({"packets": packets}))
    script = work / "post.lua"
    script.write_text(
        f'wrk.method = "POST"\nwrk.body = io.open("{body}"):read("*a")\nwrk.headers["Content-Type"] = "application/json"\n'
    )
    headers = {"Authorization": f"Api-Key {raw_key}"}

    ours, anchor = [], []
    for run in range(args.runs):
        with gunicorn(env, OURS):
            url = f"http://127.0.0.1:{OURS}/api/v1/pipelines/bench/batch/"
            wrk(url, connections=args.connections, duration=1, headers=headers, script=str(script))  # warm-up
            ours.append(
                wrk(url, connections=args.connections, duration=args.duration, headers=headers, script=str(script))
            )
        with gunicorn({**env, "BENCH_BARE": "1"}, ANCHOR):
            url = f"http://127.0.0.1:{ANCHOR}/bench/bare/"
            wrk(url, connections=16, duration=1)
            anchor.append(wrk(url, connections=16, duration=args.duration))
        print(
            f"run {run + 1}: batch {ours[-1]['rps']:.0f} req/s = {ours[-1]['rps'] * BATCH:.0f} packets/s "
            f"(non-2xx {ours[-1]['non2xx']:.0f}); Django baseline {anchor[-1]['rps']:.0f} req/s",
            flush=True,
        )

    packets_per_second = median_of(ours, "rps") * BATCH
    result = {
        "machine": machine(),
        "batch_size": BATCH,
        "packet_bytes": round(len(body.read_bytes()) / BATCH),
        "batch": {k: median_of(ours, k) for k in ("rps", "p50_ms", "p99_ms", "non2xx")},
        "packets_per_second": packets_per_second,
        "anchor_django_baseline": {k: median_of(anchor, k) for k in ("rps", "p50_ms", "p99_ms")},
        "packets_per_anchor_request": packets_per_second / median_of(anchor, "rps"),
        "runs": args.runs,
    }
    write_json("pipelines_batch", result)
    print(
        f"batch endpoint: {result['batch']['rps']:.0f} req/s x {BATCH} = {packets_per_second:,.0f} packets/s "
        f"(p50 {result['batch']['p50_ms']:.1f} ms, p99 {result['batch']['p99_ms']:.1f} ms), target >= 5,000\n"
        f"Django baseline anchor: {result['anchor_django_baseline']['rps']:.0f} req/s; "
        f"packets/s per anchor req/s: {result['packets_per_anchor_request']:.2f}\n{machine()}"
    )


if __name__ == "__main__":
    main()
