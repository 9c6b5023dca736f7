"""Watch fan-out on one ASGI process: N blocking queries held by one uvicorn, one change reaching them all.

Production mode (PostgreSQL + Redis). The watch server is serve's command line for it
(`controlplane.commandlines.uvicorn`, one process). The load client is raw asyncio streams in this
process (one connection per watcher, HTTP/1.1, each closed after its answer), so it costs little next to
the server; the change is made through the services in a thread of this process (a config entry set, or
a TTL check turned critical through `check_ttl_update` for discovery), and reaches the server over Redis
pub/sub like any other process's write.

Latency = from just before the write call to each watcher's complete answer (so it includes the write
with its commit and the coherence acknowledgements). Memory per watcher = the uvicorn process's RSS
delta from before the watchers connect (after a warm-up) to when all of them wait, / N.

Targets (issue #12): 10,000 config watchers p99 <= 250 ms, <= 50 KB each; 1,000 discovery watchers the
same. Ports 18300-18309 only.

    .venv/bin/python bench/watch_fanout.py [--kind config|discovery|both] [--config-watchers 10000]
        [--discovery-watchers 1000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import resource
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/cp_watch_fanout_bench")
os.environ.setdefault("BENCH_REDIS_URL", "redis://127.0.0.1:6379/6")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, machine, prepare_database, production_env, wait_http, write_json  # noqa: E402
from controlplane import commandlines  # noqa: E402

WATCH_PORT = 18301
HEADER_END = b"\r\n\r\n"


def raise_nofile() -> int:
    """Raise this process's open-file limit to its hard limit (inherited by the uvicorn it starts)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def rss_kib(pid: int) -> int:
    return int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1))


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def setup_django(env: dict[str, str]) -> None:
    os.environ.update(env)
    import django

    django.setup()


def seed() -> str:
    """The `bench` namespace, the `benchsvc` service (3 passing instances) and a key; returns the raw key."""
    from configstore import services as config
    from configstore.models import Namespace
    from controlplane.access.services import api_key_create
    from registry import services as registry
    from registry.models import Service

    Namespace.objects.filter(name="bench").delete()
    Service.objects.filter(name="benchsvc").delete()
    namespace = config.namespace_create(name="bench", actor="bench")
    changes = [config.EntryChange(key=f"svc.s{i}", value=f"http://s{i}.internal") for i in range(20)]
    changes.append(config.EntryChange(key="db.port", value=5432))
    config.config_changes_apply(namespace=namespace, changes=changes, actor="bench", origin="bench")
    service = registry.service_create(name="benchsvc", actor="bench")
    for n in range(3):
        instance, _ = registry.instance_register(
            service=service,
            instance_id=f"i{n}",
            address=f"10.0.0.{n + 1}",
            port=8080,
            checks=[{"name": "alive", "kind": "ttl", "ttl": 3600}],
            actor="bench",
        )
        registry.check_ttl_update(instance=instance, actor="bench")
    _, raw = api_key_create(
        name="bench-watch", scopes=["config:read", "config:write", "registry:read"], rate="100000000/h"
    )
    return raw


def change(kind: str, step: int) -> None:
    """One change the watchers wait for, through the services (published on commit)."""
    if kind == "config":
        from configstore import services as config
        from configstore.models import Namespace

        config.config_entry_set(
            namespace=Namespace.objects.get(name="bench"), key="db.port", value=6000 + step, actor="bench"
        )
    else:
        from registry import services as registry
        from registry.models import Instance

        instance = Instance.objects.get(service__name="benchsvc", instance_id="i0")
        status = "critical" if instance.status == "passing" else "passing"
        registry.check_ttl_update(instance=instance, status=status, actor="bench")


async def fetch(path: str, key: str) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", WATCH_PORT)
    writer.write(request_bytes(path, key))
    status, headers, body = await read_response(reader)
    writer.close()
    return status, headers, body


def request_bytes(path: str, key: str) -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{WATCH_PORT}\r\nAuthorization: Api-Key {key}\r\n\r\n").encode()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(HEADER_END)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


def index_header(kind: str) -> str:
    return "x-config-index" if kind == "config" else "x-registry-index"


def watch_path(kind: str, index: int) -> str:
    if kind == "config":
        return f"/api/v1/config/bench/watch/?index={index}&wait=300s"
    return f"/api/v1/discover/benchsvc/?index={index}&wait=300s"


async def settle(pid: int, quiet_s: float = 1.5, timeout: float = 180) -> None:
    """Until the server has used no CPU for `quiet_s` (every watcher authorized and waiting)."""
    deadline = time.monotonic() + timeout
    last, quiet_since = cpu_ticks(pid), time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        now = cpu_ticks(pid)
        if now - last > 1:  # more than 10 ms of CPU in 250 ms: still working
            last, quiet_since = now, time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_s:
            return
        last = now
    raise RuntimeError("the watch server never settled")


class Watcher(asyncio.Protocol):
    """One watcher's connection: sends the request, keeps what comes back, notes when the answer is whole.

    A protocol, not a stream and a task: reading 10,000 answers that arrive within a few hundred
    milliseconds must cost the client less than writing them costs the server, or the client is what gets
    measured. The answers are parsed and checked after the fan-out, outside the timing.
    """

    __slots__ = ("payload", "data", "expected", "done_at", "transport", "on_done")

    def __init__(self, payload: bytes, on_done: Callable[[], None]) -> None:
        self.payload = payload
        self.data = bytearray()
        self.expected = -1  # bytes of the whole answer, once its head is in
        self.done_at: float | None = None
        self.on_done = on_done

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.write(self.payload)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.data += data
        if self.expected < 0:
            end = self.data.find(HEADER_END)
            if end < 0:
                return
            at = self.data.find(b"\r\ncontent-length: ", 0, end)
            if at < 0:
                at = self.data.lower().find(b"\r\ncontent-length: ", 0, end)
            length = int(self.data[at + 18 : self.data.index(b"\r\n", at + 18)]) if at >= 0 else 0
            self.expected = end + 4 + length
        if len(self.data) >= self.expected and self.done_at is None:
            self.done_at = time.perf_counter()
            self.transport.close()
            self.on_done()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done_at is None:
            self.on_done()

    def answer(self) -> tuple[int, dict[str, str]] | None:
        """`(status, headers)` of the whole answer, or None when the connection ended without one."""
        if self.done_at is None:
            return None
        lines = bytes(self.data[: self.data.find(HEADER_END)]).decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(lines[0].split(" ", 2)[1]), headers


async def hold_and_fire(
    pid: int, payload: bytes, count: int, fire: Callable[[], None], check: Callable[[int, dict[str, str]], bool]
) -> dict:
    """`count` connections each sending `payload`; once the server is idle, `fire()` (in a thread) and time
    every complete answer from just before it. `check(status, headers)` says whether an answer is right."""
    before = rss_kib(pid)
    loop = asyncio.get_running_loop()
    all_done = loop.create_future()
    pending = count

    def one_done() -> None:
        nonlocal pending
        pending -= 1
        if pending == 0 and not all_done.done():
            all_done.set_result(None)

    watchers = [Watcher(payload, one_done) for _ in range(count)]
    gate = asyncio.Semaphore(256)  # connections being opened at once (the accept backlog is 4,096)

    async def connect(watcher: Watcher) -> None:
        async with gate:
            await loop.create_connection(lambda: watcher, "127.0.0.1", WATCH_PORT)

    # The client is not what is measured: keep its cyclic GC off the Django objects of this process (the
    # seeding, the change) and off its own 10,000 connections, or its collections delay the readings.
    gc.collect()
    gc.freeze()
    gc.disable()
    await asyncio.gather(*(connect(watcher) for watcher in watchers))
    await settle(pid)
    waiting = rss_kib(pid)
    early = sum(1 for watcher in watchers if watcher.done_at is not None)
    assert not early, f"{early} watchers answered before the change"
    profiler = None
    if os.environ.get("BENCH_PYSPY"):  # a py-spy profile of the server during the fan-out, for development
        profiler = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("py-spy")),
                "record",
                "--gil",
                "-p",
                str(pid),
                "-d",
                "4",
                "-r",
                "500",
                "-f",
                "raw",
                "-o",
                os.environ["BENCH_PYSPY"],
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        await asyncio.sleep(1)
    cpu_before = cpu_ticks(pid)
    client_before = time.process_time()
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def write() -> None:
        fire()
        timings["write_s"] = time.perf_counter() - started

    threading.Thread(target=write, daemon=True).start()
    await asyncio.wait_for(all_done, timeout=120)
    fanout_cpu_ms = (cpu_ticks(pid) - cpu_before) * 1000 / os.sysconf("SC_CLK_TCK")
    client_cpu_ms = (time.process_time() - client_before) * 1000
    if profiler is not None:
        profiler.wait(30)
    gc.enable()
    gc.unfreeze()
    failures: list[str] = []
    received: list[float] = []
    for watcher in watchers:
        answer = watcher.answer()
        if answer is None:
            failures.append("connection ended without an answer")
        elif not check(*answer):
            failures.append(f"{answer[0]} {answer[1]}")
        if watcher.done_at is not None:
            received.append(watcher.done_at)
    latencies = sorted(t - started for t in received)
    return {
        "watchers": count,
        "delivered": len(latencies) - len(failures),
        "failures": failures[:5],
        "first_ms": latencies[0] * 1000,
        "p10_ms": latencies[len(latencies) // 10] * 1000,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[max(int(len(latencies) * 0.99) - 1, 0)] * 1000,
        "max_ms": latencies[-1] * 1000,
        "write_ms": timings.get("write_s", float("nan")) * 1000,
        "rss_before_kib": before,
        "rss_waiting_kib": waiting,
        "kib_per_watcher": (waiting - before) / count,
        # CPU the server spent from the write to the last answer: what the fan-out costs, whatever else
        # runs on the machine (wall-clock figures stretch with the load average).
        "server_cpu_ms": fanout_cpu_ms,
        "server_cpu_us_per_watcher": fanout_cpu_ms * 1000 / count,
        # This process's CPU over the same span (the reading of the answers, and the change's thread).
        "client_cpu_ms": client_cpu_ms,
        "loadavg_1m": load_before,
    }


async def one_round(kind: str, count: int, key: str, pid: int, step: int) -> dict:
    """The control plane's watch server: `count` watchers of `kind`, one change through the services."""
    status, headers, _ = await fetch(watch_path(kind, 0).replace("wait=300s", "wait=0s"), key)
    assert status == 200, status
    index = int(headers[index_header(kind)])
    for _ in range(20):  # warm-up: hub, threads, caches
        await fetch(watch_path(kind, 0), key)
    await settle(pid, quiet_s=1.0)

    def right(got: int, answer: dict[str, str]) -> bool:
        return got == 200 and int(answer[index_header(kind)]) > index

    return await hold_and_fire(
        pid, request_bytes(watch_path(kind, index), key), count, lambda: change(kind, step), right
    )


async def floor_round(count: int, pid: int) -> dict:
    """The anchor: the bare ASGI app of bench/watch_floor_app.py under the same uvicorn command line."""
    for _ in range(20):
        await fetch("/healthz", "")
    await settle(pid, quiet_s=1.0)

    def fire() -> None:
        urllib.request.urlopen(f"http://127.0.0.1:{WATCH_PORT}/fire", timeout=30).read()  # noqa: S310 - loopback

    return await hold_and_fire(pid, request_bytes("/wait", ""), count, fire, lambda got, _: got == 200)


FLOOR_APP = "bench.watch_floor_app:application"


def event_loop(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """The load client's event loop: the same kind uvicorn is told to run (`--loop`)."""
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def run_kind(env: dict[str, str], kind: str, count: int, key: str, runs: int, floor: bool, loop: str) -> dict:
    """`runs` rounds of `kind`, each (with `floor`) right after the same round against the bare ASGI app."""
    results: list[dict] = []
    floors: list[dict] = []
    for run in range(runs):
        sides = [("floor", FLOOR_APP)] if floor else []
        sides.append((kind, commandlines.UVICORN_APP))
        for side, app in sides:
            # A fresh server per run: RSS deltas are not blurred by what an earlier run left allocated.
            uvicorn = subprocess.Popen(
                commandlines.uvicorn(
                    "127.0.0.1",
                    WATCH_PORT,
                    app=app,
                    extra=["--log-level", "warning", "--backlog", "4096", "--loop", loop],
                ),
                env=env,
                cwd=ROOT,
            )
            try:
                wait_http(f"http://127.0.0.1:{WATCH_PORT}/healthz")
                with asyncio.Runner(loop_factory=event_loop(loop)) as runner:
                    if side == "floor":
                        result = runner.run(floor_round(count, uvicorn.pid))
                    else:
                        result = runner.run(one_round(kind, count, key, uvicorn.pid, run))
            finally:
                uvicorn.terminate()
                uvicorn.wait(30)
            print(
                f"  {side:9} run {run + 1}: {result['delivered']}/{count} first {result['first_ms']:.0f} ms "
                f"p10 {result['p10_ms']:.0f} ms p50 {result['p50_ms']:.0f} ms "
                f"p99 {result['p99_ms']:.0f} ms max {result['max_ms']:.0f} ms (write {result['write_ms']:.0f} ms), "
                f"{result['kib_per_watcher']:.1f} KiB/watcher; server CPU {result['server_cpu_ms']:.0f} ms "
                f"({result['server_cpu_us_per_watcher']:.0f} us/watcher), client CPU {result['client_cpu_ms']:.0f} ms, load average {result['loadavg_1m']:.1f}",
                flush=True,
            )
            (floors if side == "floor" else results).append(result)
    summary = summarize(results)
    if floors:
        summary["floor"] = summarize(floors)
        summary["floor"]["runs"] = floors
        summary["p99_ratio_to_floor"] = summary["p99_ms_median"] / summary["floor"]["p99_ms_median"]
    summary["runs"] = results
    return summary


def summarize(results: list[dict]) -> dict:
    return {
        "p99_ms_median": statistics.median(r["p99_ms"] for r in results),
        "p50_ms_median": statistics.median(r["p50_ms"] for r in results),
        "kib_per_watcher_median": statistics.median(r["kib_per_watcher"] for r in results),
        "server_cpu_us_per_watcher_median": statistics.median(r["server_cpu_us_per_watcher"] for r in results),
        "delivered_min": min(r["delivered"] for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kind", choices=["config", "discovery", "both"], default="both")
    parser.add_argument("--config-watchers", type=int, default=10_000)
    parser.add_argument("--discovery-watchers", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--loop",
        choices=["uvloop", "asyncio"],
        default="uvloop",
        help="event loop of the watch server (uvicorn --loop) and of the load client (default: uvloop, what serve runs)",
    )
    parser.add_argument("--no-floor", action="store_true", help="skip the bare-ASGI anchor before each round")
    args = parser.parse_args()
    nofile = raise_nofile()
    redis_base = os.environ["BENCH_REDIS_URL"].rsplit("/", 1)
    env = production_env(
        DJANGO_SETTINGS_MODULE="controlplane.settings",
        CELERY_BROKER_URL=f"{redis_base[0]}/{int(redis_base[1]) + 1}",
    )
    prepare_database(env)
    setup_django(env)
    key = seed()
    result: dict = {
        "machine": machine(),
        "nofile": nofile,
        "command": commandlines.uvicorn("HOST", "PORT"),
        "loop": args.loop,
    }
    kinds = ["config", "discovery"] if args.kind == "both" else [args.kind]
    for kind in kinds:
        count = args.config_watchers if kind == "config" else args.discovery_watchers
        summary = run_kind(env, kind, count, key, args.runs, floor=not args.no_floor, loop=args.loop)
        result[kind] = summary
        floor = summary.get("floor")
        print(
            f"{kind}: {count} watchers, median of {args.runs}: p99 {summary['p99_ms_median']:.0f} ms "
            f"(p50 {summary['p50_ms_median']:.0f} ms), {summary['kib_per_watcher_median']:.1f} KiB per watcher, "
            f"server CPU {summary['server_cpu_us_per_watcher_median']:.0f} us per answer; "
            f"targets p99 <= 250 ms, <= 50 KB",
            flush=True,
        )
        if floor:
            print(
                f"  floor (bare ASGI app, same uvicorn, same run): p99 {floor['p99_ms_median']:.0f} ms "
                f"(p50 {floor['p50_ms_median']:.0f} ms), {floor['kib_per_watcher_median']:.1f} KiB per watcher, "
                f"server CPU {floor['server_cpu_us_per_watcher_median']:.0f} us per answer; "
                f"p99 ratio to the floor {summary['p99_ratio_to_floor']:.2f}",
                flush=True,
            )
    print(f"results: {write_json('watch_fanout', result)}")


if __name__ == "__main__":
    main()
