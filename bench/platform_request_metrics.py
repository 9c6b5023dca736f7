"""Per-route request metrics on vs off: the platform benchmark (bench/platform_api.py, §1 of
docs/BENCHMARKS.md) with MONITORING_REQUEST_METRICS=true and =false, each beside the bare view, in one run.
Target (issue #11): the metrics cost at most 3 % of the full/bare ratio, i.e. ratio_on / ratio_off >= 0.97.

Three gunicorns (`-w 2`, the command `serve` runs) are up side by side for the whole run: full stack with
metrics on, the same with metrics off, the bare view. A *pair* is three wrk blocks back to back, the bare
view in the middle, the on and off sides around it in ABBA order (pair 1: on, bare, off; pair 2: off, bare,
on; ...): on a shared machine whose speed drifts, each side sits next to the bare block it is divided by,
and a linear drift across two pairs falls on both sides alike. Each pair gives ratio_on = on/bare,
ratio_off = off/bare and their quotient; the figures are medians of per-pair values, never of pooled rates.

Beside throughput, each block reads its server's CPU time (user + system of the gunicorn master and its
workers, from /proc) and divides it by the requests served: what a request costs that side, which other
tenants of the machine move far less than they move req/s. The CPU difference on - off is the metrics'
cost per request, also given as a share of the "off" CPU. Last, the request-path part alone (the
middleware's `enabled()` and `record()`), timed in a quiet process: the floor under both figures.

Run: .venv/bin/python bench/platform_request_metrics.py [--runs 10] [--duration 3]   (--runs = pairs)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import gunicorn, machine, manage_shell, median_of, write_json, wrk  # noqa: E402
from bench.platform_api import BARE_PATH, FULL_PATH, platform_prepare  # noqa: E402

PORTS = {"on": 18011, "off": 18012, "bare": 18013}
TARGET = 0.97  # ratio_on / ratio_off: "at most 3 % of its ratio"
# What the metrics add to one request on the request path (the middleware's `enabled()` check and `record()`),
# timed in a quiet process before the servers start: a floor the end-to-end figures can be read against.
RECORD_TIMING = (
    "import timeit\n"
    "from controlplane.observability import requestmetrics\n"
    "requestmetrics.request_metrics.flusher = None  # timing only: nothing is written\n"
    "call = lambda: requestmetrics.enabled() and requestmetrics.request_metrics.record("
    "'GET', '/bench/full/', 200, 0.004)\n"
    "n = 200000\n"
    "print(min(timeit.repeat(call, number=n, repeat=5)) / n * 1e6)"
)
COUNTED = (
    "from monitoring.models import MetricPoint\n"
    "print(sum(MetricPoint.objects.filter(series__kind='route', series__target='GET {path}')"
    ".values_list('count', flat=True)))"
)


def cpu_seconds(master_pid: int) -> float:
    """User + system CPU time of a gunicorn master, its live workers and its reaped ones, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")

    def stat(pid: int) -> list[str]:
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return []

    master = stat(master_pid)
    if not master:
        return 0.0
    # Fields after the command: utime, stime, cutime, cstime are the 12th-15th (a worker that exited and
    # was waited for moves its time into the master's cutime/cstime, so nothing is lost if one restarts).
    total = sum(int(master[i]) for i in (11, 12, 13, 14))
    try:
        children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    except OSError:
        children = []
    for pid in children:
        fields = stat(int(pid))
        if fields:
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def order_of(pair: int) -> list[str]:
    """ABBA: on/off swap places every pair, the bare view always between them."""
    return ["on", "bare", "off"] if pair % 2 == 0 else ["off", "bare", "on"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10, help="pairs (on, bare, off in ABBA order); even is best")
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk block")
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()

    platform = platform_prepare("bench-request-metrics")
    sides = {
        "on": ({**platform.env, "MONITORING_REQUEST_METRICS": "true"}, FULL_PATH, platform.auth),
        "off": ({**platform.env, "MONITORING_REQUEST_METRICS": "false"}, FULL_PATH, platform.auth),
        "bare": (platform.bare_env, BARE_PATH, {}),
    }
    counted_before = int(manage_shell(platform.env, COUNTED.format(path=FULL_PATH)) or 0)
    record_us = float(manage_shell({**platform.env, "MONITORING_REQUEST_METRICS": "true"}, RECORD_TIMING))
    blocks: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
    served = {name: 0.0 for name in sides}  # every request each side answered, warm-ups included
    with ExitStack() as stack:
        masters = {
            name: stack.enter_context(gunicorn(side_env, PORTS[name])).pid
            for name, (side_env, _path, _headers) in sides.items()
        }

        def block(name: str, duration: int) -> dict[str, float]:
            _env, path, headers = sides[name]
            before = cpu_seconds(masters[name])
            row = wrk(f"http://127.0.0.1:{PORTS[name]}{path}", connections=args.connections, duration=duration,
                      headers=headers)  # fmt: skip
            requests = max(1.0, row["rps"] * duration)
            served[name] += requests
            row["cpu_us_per_request"] = (cpu_seconds(masters[name]) - before) / requests * 1e6
            return row

        for name in sides:
            block(name, 1)  # warm-up: connections, compiled routes, the key's cached record
        for pair in range(args.runs):
            for name in order_of(pair):
                blocks[name].append(block(name, args.duration))
            on, off, bare = (blocks[n][-1] for n in ("on", "off", "bare"))
            print(
                f"pair {pair + 1} ({', '.join(order_of(pair))}): on {on['rps']:.0f}, off {off['rps']:.0f}, "
                f"bare {bare['rps']:.0f} req/s; ratio on {on['rps'] / bare['rps']:.3f}, "
                f"off {off['rps'] / bare['rps']:.3f}; CPU per request on {on['cpu_us_per_request']:.0f} us, "
                f"off {off['cpu_us_per_request']:.0f} us",
                flush=True,
            )
    # The servers have stopped, so every worker's last tallies are flushed (atexit) by now.
    counted = int(manage_shell(platform.env, COUNTED.format(path=FULL_PATH)) or 0) - counted_before
    platform.cleanup()

    pairs = list(zip(blocks["on"], blocks["off"], blocks["bare"], strict=True))
    ratio_on = [on["rps"] / bare["rps"] for on, _off, bare in pairs]
    ratio_off = [off["rps"] / bare["rps"] for _on, off, bare in pairs]
    quotient = [on["rps"] / off["rps"] for on, off, _bare in pairs]  # = ratio_on / ratio_off of the pair
    cpu_on = [on["cpu_us_per_request"] for on, _off, _bare in pairs]
    cpu_off = [off["cpu_us_per_request"] for _on, off, _bare in pairs]
    cpu_diff = [a - b for a, b in zip(cpu_on, cpu_off, strict=True)]
    out = {
        "machine": machine(),
        "pairs": args.runs,
        "duration_s": args.duration,
        **{
            name: {k: median_of(rows, k) for k in ("rps", "p50_ms", "p99_ms", "non2xx")}
            for name, rows in blocks.items()
        },
        "ratio_on_median": statistics.median(ratio_on),
        "ratio_off_median": statistics.median(ratio_off),
        "ratio_on_over_off_median": statistics.median(quotient),
        "ratio_on_over_off": quotient,
        "ratios_on": ratio_on,
        "ratios_off": ratio_off,
        "target_ratio_on_over_off": TARGET,
        "server_cpu_us_per_request": {
            name: statistics.median(r["cpu_us_per_request"] for r in rows) for name, rows in blocks.items()
        },
        "cpu_us_on_minus_off_median": statistics.median(cpu_diff),
        "cpu_us_on_minus_off": cpu_diff,
        "cpu_cost_of_request_metrics": statistics.median(cpu_diff) / statistics.median(cpu_off),
        "record_us_per_request": record_us,
        "record_share_of_off_cpu": record_us / statistics.median(cpu_off),
        # A check that the switch did what it says: the "on" server's requests are in the store, the "off"
        # server's are not (both serve the same route, so "off" counting would show as counted > served).
        "requests_served_on": round(served["on"]),
        "requests_served_off": round(served["off"]),
        "requests_counted_in_store": counted,
    }
    write_json("platform_request_metrics", out)
    q = out["ratio_on_over_off_median"]
    print(
        f"metrics on:  {out['on']['rps']:.0f} req/s p99 {out['on']['p99_ms']:.2f} ms (median block)\n"
        f"metrics off: {out['off']['rps']:.0f} req/s p99 {out['off']['p99_ms']:.2f} ms\n"
        f"bare view:   {out['bare']['rps']:.0f} req/s\n"
        f"ratio (full/bare, median of {args.runs} pairs): on {out['ratio_on_median']:.3f}, "
        f"off {out['ratio_off_median']:.3f}; ratio_on/ratio_off per pair, median {q:.3f} "
        f"(cost {1 - q:.1%}; target >= {TARGET}: {'met' if q >= TARGET else 'not met'})\n"
        f"server CPU per request: on {out['server_cpu_us_per_request']['on']:.0f} us, "
        f"off {out['server_cpu_us_per_request']['off']:.0f} us, bare {out['server_cpu_us_per_request']['bare']:.0f} us;"
        f" on - off per pair, median {out['cpu_us_on_minus_off_median']:.1f} us"
        f" = {out['cpu_cost_of_request_metrics']:.1%} of the off side's CPU\n"
        f"on the request path: enabled() + record() {record_us:.2f} us (best of 5 x 200,000 calls)"
        f" = {out['record_share_of_off_cpu']:.2%} of the off side's CPU per request\n"
        f"requests: served on {out['requests_served_on']} (~), off {out['requests_served_off']} (~);"
        f" counted in the store {counted} (should be about the 'on' figure)"
    )


if __name__ == "__main__":
    main()
