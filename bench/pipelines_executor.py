"""Benchmark: the compiled pipeline executor vs. a hand-written Python function doing the same work.

Six steps over ~1 KB packets: two transforms, a validate with a 20-property JSON schema, a filter, an enrich
and a route with five rules. Both sides run in this process on the same packets; the hand-written side is the
practical limit (plain Python, the same compiled JSON-schema validator). Prints packets/s for both and the
ratio, median of `--runs` runs.

    .venv/bin/python bench/pipelines_executor.py [--packets 20000] [--runs 3] [--clock cpu|wall]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
os.environ.setdefault("CONTROLPLANE_VAR_DIR", "/tmp/cp-bench-pipelines")

import django  # noqa: E402

django.setup()

import fastjsonschema  # noqa: E402

from pipelines.executor import compile_pipeline, prepare_packet  # noqa: E402
from pipelines.paths import MISSING, copy_json  # noqa: E402

PROPERTIES = {f"f{i:02d}": {"type": "string", "maxLength": 40} for i in range(10)} | {
    f"n{i:02d}": {"type": "number", "minimum": 0} for i in range(10)
}
SCHEMA = {"type": "object", "properties": PROPERTIES, "required": list(PROPERTIES)}
CONFIG = {("shop", "region"): "eu-west"}

DEFINITION = {
    "id": 1,
    "slug": "bench",
    "version": 1,
    "error_policy": "stop",
    "steps": [
        {
            "name": "normalize",
            "kind": "transform",
            "priority": 10,
            "config": {
                "operations": [
                    {"op": "strip", "path": "payload.f00"},
                    {"op": "upper", "path": "payload.f01"},
                    {"op": "cast", "path": "payload.qty", "type": "int"},
                    {"op": "set", "path": "payload.total", "expr": "multiply(payload.n00, payload.qty)"},
                    {"op": "add_tag", "value": "normalized"},
                ]
            },
        },
        {
            "name": "schema",
            "kind": "validate",
            "priority": 20,
            "config": {"rules": [{"path": "payload", "kind": "json_schema", "params": {"schema": SCHEMA}}]},
        },
        {"name": "drop-tests", "kind": "filter", "priority": 30, "config": {"when": "payload.test == `true`"}},
        {
            "name": "region",
            "kind": "enrich",
            "priority": 40,
            "config": {"path": "metadata.region", "namespace": "shop", "key": "region"},
        },
        {
            "name": "stamp",
            "kind": "transform",
            "priority": 50,
            "config": {
                "operations": [
                    {"op": "rename", "path": "payload.f09", "to": "payload.note"},
                    {"op": "set_metadata", "key": "source", "value": "bench"},
                    {"op": "default", "path": "payload.currency", "value": "EUR"},
                ]
            },
        },
        {
            "name": "route",
            "kind": "route",
            "priority": 60,
            "config": {
                "mode": "all",
                "rules": [
                    {"when": "payload.total > `1000`", "to": "large"},
                    {"when": "contains(tags, 'priority')", "to": "fast"},
                    {"when": "metadata.region == 'eu-west'", "to": "eu"},
                    {"when": "payload.currency == 'USD'", "to": "usd"},
                    {"when": "payload.n01 < `10`", "to": "small-n1"},
                ],
                "default": "standard",
            },
        },
    ],
}

_validate_schema = fastjsonschema.compile(SCHEMA)


def hand_written(packet: dict) -> tuple[str, dict, list[str]]:
    """The same six steps written directly in Python (input copied, as the executor does)."""
    packet = copy_json(packet)
    payload, tags, metadata = packet["payload"], packet["tags"], packet["metadata"]
    # normalize
    if isinstance(payload.get("f00"), str):
        payload["f00"] = payload["f00"].strip()
    if isinstance(payload.get("f01"), str):
        payload["f01"] = payload["f01"].upper()
    if "qty" in payload:
        payload["qty"] = int(payload["qty"])
    payload["total"] = payload["n00"] * payload["qty"]
    if "normalized" not in tags:
        tags.append("normalized")
    # schema
    try:
        _validate_schema(payload)
    except fastjsonschema.JsonSchemaValueException as exc:
        return "failed", packet, [str(exc)]
    # drop-tests
    if payload.get("test") is True:
        return "dropped", packet, []
    # region
    value = CONFIG.get(("shop", "region"), MISSING)
    if value is not MISSING:
        metadata["region"] = value
    # stamp
    if "f09" in payload:
        payload["note"] = payload.pop("f09")
    metadata["source"] = "bench"
    if payload.get("currency") is None:
        payload["currency"] = "EUR"
    # route
    routes = []
    if payload["total"] > 1000:
        routes.append("large")
    if "priority" in tags:
        routes.append("fast")
    if metadata.get("region") == "eu-west":
        routes.append("eu")
    if payload.get("currency") == "USD":
        routes.append("usd")
    if payload["n01"] < 10:
        routes.append("small-n1")
    if not routes:
        routes.append("standard")
    return "succeeded", packet, routes


def make_packets(count: int) -> list[dict]:
    packets = []
    for i in range(count):
        payload = {f"f{j:02d}": f"  value-{i}-{j}-lorem-ipsum  "[:38] for j in range(10)} | {
            f"n{j:02d}": (i * 7 + j) % 500 for j in range(10)
        }
        payload |= {"qty": str(1 + i % 5), "comment": "x" * 420}
        packets.append(
            prepare_packet(
                {
                    "id": f"p{i}",
                    "payload": payload,
                    "metadata": {"src": "bench"},
                    "tags": ["priority"] if i % 4 == 0 else [],
                }
            )
        )
    return packets


def lookup(namespace: str, key: str) -> object:
    return CONFIG.get((namespace, key), MISSING)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--packets", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=7, help="paired runs")
    # CPU time of this process: on a shared machine wall time also counts the time other processes held
    # the core. On an idle machine both clocks agree.
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu")
    args = parser.parse_args()
    packets = make_packets(args.packets)
    size = statistics.mean(len(json.dumps(p)) for p in packets[:100])
    compiled = compile_pipeline(DEFINITION)

    # Same answers from both, or the comparison means nothing.
    for packet in packets[:200]:
        ours = compiled.run(packet, lookup=lookup)
        status, out, routes = hand_written(packet)
        assert (ours.status, ours.packet, ours.routes) == (status, out, routes), (ours.as_dict(), out, routes)

    clock = time.process_time if args.clock == "cpu" else time.perf_counter

    def rate(fn) -> float:  # type: ignore[no-untyped-def]
        gc.collect()  # neither side pays for the other's garbage
        start = clock()
        for packet in packets:
            fn(packet)
        return len(packets) / (clock() - start)

    def ours_run(packet):  # type: ignore[no-untyped-def]
        return compiled.run(packet, lookup=lookup)

    # Paired runs in alternating order (AB, BA, AB, ...) so drift in the machine's speed hits both sides
    # alike; the figure is the median of the per-pair ratios.
    executor_rates, hand_rates, ratios = [], [], []
    for pair in range(args.runs):
        if pair % 2 == 0:
            executor_rates.append(rate(ours_run))
            hand_rates.append(rate(hand_written))
        else:
            hand_rates.append(rate(hand_written))
            executor_rates.append(rate(ours_run))
        ratios.append(executor_rates[-1] / hand_rates[-1])
    ours, theirs = statistics.median(executor_rates), statistics.median(hand_rates)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, Python {platform.python_version()}"
    )
    print(f"packets: {args.packets} x {args.runs} runs, mean packet {size:.0f} bytes, 6 steps, {args.clock} clock")
    print(f"executor:     {ours:>10,.0f} packets/s  (runs: {', '.join(f'{r:,.0f}' for r in executor_rates)})")
    print(f"hand-written: {theirs:>10,.0f} packets/s  (runs: {', '.join(f'{r:,.0f}' for r in hand_rates)})")
    print(f"pair ratios:  {', '.join(f'{r:.2f}' for r in ratios)}")
    print(f"ratio executor/hand-written (median of {args.runs} pairs): {statistics.median(ratios):.2f} (target >= 0.5)")


if __name__ == "__main__":
    main()
