"""Per-route request metrics on vs off: the platform benchmark (bench/platform_api.py, §1 of
docs/BENCHMARKS.md) run with MONITORING_REQUEST_METRICS=true and =false, beside the bare view, in one run.
Target: the metrics cost at most 3 % of the full/bare ratio.

Run: .venv/bin/python bench/platform_request_metrics.py [--runs 15] [--duration 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from contextlib import ExitStack
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


def cpu_seconds(master_pid: int) -> float:
    """User + system CPU time of a gunicorn master and its workers, from /proc (clock ticks)."""
    ticks = os.sysconf("SC_CLK_TCK")
    pids = [master_pid]
    try:
        children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
        pids += [int(pid) for pid in children]
    except OSError:
        pass
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15, help="blocks per side")
    parser.add_argument("--duration", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    ensure_debian_packages("wrk")
    metrics_dir = Path(tempfile.mkdtemp(prefix="bench-metrics-"))
    env = production_env(
        DJANGO_SETTINGS_MODULE="bench.bench_settings", LOG_LEVEL="info", PROMETHEUS_MULTIPROC_DIR=str(metrics_dir)
    )
    prepare_database(env)
    raw_key = manage_shell(
        env,
        "from controlplane.access.services import api_key_create\n"
        "k, raw = api_key_create(name='bench-request-metrics', scopes=['events:read'], rate='100000000/h')\n"
        "print(raw)",
    )
    auth = {"Authorization": f"Api-Key {raw_key}"}
    sides = {
        "on": ({**env, "MONITORING_REQUEST_METRICS": "true"}, 18011, "/bench/full/", auth),
        "off": ({**env, "MONITORING_REQUEST_METRICS": "false"}, 18012, "/bench/full/", auth),
        "bare": ({**env, "BENCH_BARE": "1"}, 18013, "/bench/bare/", {}),
    }
    results: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
    # The three servers run side by side and short wrk blocks alternate between them, order rotated each
    # round: on a shared machine whose speed moves by 2x within a minute, whole runs per side compare
    # moments, not designs (first attempt: "on" 843 vs "off" 347 req/s, then 394 vs 950).
    # Besides throughput, the servers' own CPU time per request: what a side costs, read from /proc, which
    # other tenants of the machine move far less than they move req/s.
    cpu_per_request: dict[str, list[float]] = {name: [] for name in sides}
    masters: dict[str, int] = {}
    with ExitStack() as stack:
        for name, (side_env, port, _path, _headers) in sides.items():
            masters[name] = stack.enter_context(gunicorn(side_env, port)).pid
        for _env, port, path, headers in sides.values():
            wrk(f"http://127.0.0.1:{port}{path}", connections=args.connections, duration=1, headers=headers)
        names = list(sides)
        for block in range(args.runs):
            order = names[block % 3 :] + names[: block % 3]
            for name in order:
                _env, port, path, headers = sides[name]
                url = f"http://127.0.0.1:{port}{path}"
                before = cpu_seconds(masters[name])
                results[name].append(wrk(url, connections=args.connections, duration=args.duration, headers=headers))
                spent = cpu_seconds(masters[name]) - before
                cpu_per_request[name].append(spent / max(1.0, results[name][-1]["rps"] * args.duration) * 1e6)
            print(
                f"block {block + 1}: on {results['on'][-1]['rps']:.0f}, off {results['off'][-1]['rps']:.0f}, "
                f"bare {results['bare'][-1]['rps']:.0f} req/s",
                flush=True,
            )
    ratio_on = sorted(o["rps"] / b["rps"] for o, b in zip(results["on"], results["bare"], strict=True))
    ratio_off = sorted(o["rps"] / b["rps"] for o, b in zip(results["off"], results["bare"], strict=True))
    median_on, median_off = ratio_on[len(ratio_on) // 2], ratio_off[len(ratio_off) // 2]
    # Also the plain on/off pairs of each block (the two full-stack sides run one after the other).
    pairs = sorted(o["rps"] / f["rps"] for o, f in zip(results["on"], results["off"], strict=True))
    points = manage_shell(
        env,
        "from monitoring.models import MetricPoint\n"
        "print(sum(MetricPoint.objects.filter(series__kind='route', series__target='GET /bench/full/')"
        ".values_list('count', flat=True)))",
    )
    out = {
        "machine": machine(),
        **{
            name: {k: median_of(rows, k) for k in ("rps", "p50_ms", "p99_ms", "non2xx")}
            for name, rows in results.items()
        },
        "ratio_on_median": median_on,
        "ratio_off_median": median_off,
        "cost_of_request_metrics": 1 - median_on / median_off,
        "on_over_off_median": pairs[len(pairs) // 2],
        "on_over_off": pairs,
        "ratios_on": ratio_on,
        "ratios_off": ratio_off,
        "requests_counted_in_store": int(points or 0),
        "server_cpu_us_per_request": {name: statistics.median(v) for name, v in cpu_per_request.items()},
        "cpu_cost_of_request_metrics": statistics.median(cpu_per_request["on"])
        / statistics.median(cpu_per_request["off"])
        - 1,
        "runs": args.runs,
    }
    shutil.rmtree(metrics_dir, ignore_errors=True)
    write_json("platform_request_metrics", out)
    print(
        f"full, metrics on:  {out['on']['rps']:.0f} req/s p99 {out['on']['p99_ms']:.2f} ms\n"
        f"full, metrics off: {out['off']['rps']:.0f} req/s p99 {out['off']['p99_ms']:.2f} ms\n"
        f"bare view:         {out['bare']['rps']:.0f} req/s\n"
        f"ratio on {median_on:.3f}, off {median_off:.3f}: request metrics cost {out['cost_of_request_metrics']:.1%}"
        f" (on/off of each block, median {out['on_over_off_median']:.3f})\n"
        f"server CPU per request: on {out['server_cpu_us_per_request']['on']:.0f} us, "
        f"off {out['server_cpu_us_per_request']['off']:.0f} us, bare {out['server_cpu_us_per_request']['bare']:.0f} us"
        f" -> request metrics cost {out['cpu_cost_of_request_metrics']:.1%} of the full stack's CPU"
        f" (target <= 3 %); {out['requests_counted_in_store']} requests counted in the store"
    )


if __name__ == "__main__":
    main()
