"""SDK overhead: `Client.config(ns)` vs a raw HTTP GET of the same URL, in the same run, as a ratio.

Production mode (gunicorn + PostgreSQL + Redis, the command line serve runs), the `bench` namespace of
the config benchmark (50 entries, one secret). One sequential client on one keep-alive connection, so
the figure is the SDK's own cost per read (parsing, the read-only mapping, the outage cache's
confirmation, retry bookkeeping) against httpx doing only the GET and reading the body. Blocks of 50 reads
alternate raw and SDK so both see the same server; the ratio is SDK reads/s over raw reads/s, median of the runs.

    .venv/bin/python bench/client_overhead.py --runs 5 --requests 2000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
from controlplane_client import Client  # noqa: E402

from bench.common import gunicorn, machine, prepare_database, production_env, write_json  # noqa: E402
from bench.configstore_bench import seed  # noqa: E402

PORT = 8731


def one_run(base: str, key: str, n: int, cache_dir: Path, block: int = 50) -> tuple[float, float, float, float]:
    """(raw reads/s, SDK reads/s, raw client CPU µs/read, SDK client CPU µs/read): blocks of `block` reads alternate between the two, so a machine whose
    speed moves (a shared VM) moves both sides alike; each side's rate is its reads over its own time."""
    url = f"{base}/api/v1/config/bench/"
    with (
        httpx.Client(headers={"Authorization": f"Api-Key {key}"}) as http,
        Client(base, key, cache_dir=cache_dir) as client,
    ):
        http.get(url).raise_for_status()  # connections up before the clock starts
        client.config("bench")
        raw_time = sdk_time = raw_cpu = sdk_cpu = 0.0
        for _ in range(n // block):
            started, cpu = time.perf_counter(), time.process_time()
            for _ in range(block):
                response = http.get(url)
                response.raise_for_status()
                response.content  # noqa: B018 - the body is read, as the SDK reads it
            raw_time += time.perf_counter() - started
            raw_cpu += time.process_time() - cpu
            started, cpu = time.perf_counter(), time.process_time()
            for _ in range(block):
                cfg = client.config("bench")
                cfg["db.port"]  # noqa: B018 - what a service does with it
            sdk_time += time.perf_counter() - started
            sdk_cpu += time.process_time() - cpu
        done = (n // block) * block
        return done / raw_time, done / sdk_time, raw_cpu / done * 1e6, sdk_cpu / done * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    env = production_env()
    prepare_database(env)
    key = seed(env)
    base = f"http://127.0.0.1:{PORT}"
    runs = []
    with gunicorn(env, PORT, workers=2), tempfile.TemporaryDirectory() as cache_dir:
        one_run(base, key, 200, Path(cache_dir))  # warm both paths: workers' caches, imports
        for run in range(args.runs):
            raw, sdk, raw_cpu, sdk_cpu = one_run(base, key, args.requests, Path(cache_dir))
            runs.append(
                {"raw_rps": raw, "sdk_rps": sdk, "ratio": sdk / raw, "raw_cpu_us": raw_cpu, "sdk_cpu_us": sdk_cpu}
            )
            print(
                f"run {run + 1}: raw {raw:,.0f} reads/s, SDK {sdk:,.0f} reads/s, ratio {sdk / raw:.3f}; "
                f"client CPU per read raw {raw_cpu:.0f} us, SDK {sdk_cpu:.0f} us",
                flush=True,
            )
    result = {
        "machine": machine(),
        "requests_per_round": args.requests,
        "runs": runs,
        "median_raw_rps": statistics.median(r["raw_rps"] for r in runs),
        "median_sdk_rps": statistics.median(r["sdk_rps"] for r in runs),
        "median_ratio": statistics.median(r["ratio"] for r in runs),
        "median_raw_cpu_us": statistics.median(r["raw_cpu_us"] for r in runs),
        "median_sdk_cpu_us": statistics.median(r["sdk_cpu_us"] for r in runs),
    }
    print(f"median ratio {result['median_ratio']:.3f} (target >= 0.9); {write_json('client_overhead', result)}")


if __name__ == "__main__":
    main()
