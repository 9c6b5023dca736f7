"""Config store benchmark, production mode (gunicorn -w 2, PostgreSQL, Redis, uvicorn for watches).

1. Authenticated, rate-limited reads: `GET /api/v1/config/{ns}/{key}/` and the namespace GET, against etcd
   (Debian etcd-server, single member) serving the same value through its JSON gateway range endpoint;
   same wrk settings (-t1 -c32), same run; median of N runs. Targets: ratio >= 0.25, p99 <= 20 ms.
2. Importing 10,000 entries over HTTP (target < 3 s).
3. 1,000 concurrent watchers held by one uvicorn process; one change must reach them all (p99 <= 1 s);
   memory per watcher from the process RSS before and while they wait.

Ports 18200-18299 only. Run: .venv/bin/python bench/configstore_bench.py [--runs 3] [--duration 5]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/cp_configstore_bench")
os.environ.setdefault("BENCH_REDIS_URL", "redis://127.0.0.1:6379/4")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    ROOT,
    ensure_debian_packages,
    gunicorn,
    machine,
    manage_shell,
    median_of,
    prepare_database,
    production_env,
    wait_http,
    write_json,
    wrk,
)
from controlplane import commandlines  # noqa: E402

API_PORT, WATCH_PORT, ETCD_CLIENT, ETCD_PEER = 18201, 18202, 18279, 18280
VALUE = "db.internal.example.com"


def start_etcd(data_dir: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [
            "etcd",
            "--data-dir",
            data_dir,
            "--name",
            "bench",
            "--listen-client-urls",
            f"http://127.0.0.1:{ETCD_CLIENT}",
            "--advertise-client-urls",
            f"http://127.0.0.1:{ETCD_CLIENT}",
            "--listen-peer-urls",
            f"http://127.0.0.1:{ETCD_PEER}",
            "--initial-advertise-peer-urls",
            f"http://127.0.0.1:{ETCD_PEER}",
            "--initial-cluster",
            f"bench=http://127.0.0.1:{ETCD_PEER}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    body = json.dumps(
        {"key": base64.b64encode(b"config/bench/db.host").decode(), "value": base64.b64encode(VALUE.encode()).decode()}
    ).encode()
    while time.monotonic() < deadline:
        try:
            request = urllib.request.Request(f"http://127.0.0.1:{ETCD_CLIENT}/v3/kv/put", data=body, method="POST")
            urllib.request.urlopen(request, timeout=1).read()  # noqa: S310 - loopback
            return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("etcd did not start")


def seed(env: dict[str, str]) -> str:
    """A `bench` namespace with 50 entries (one secret) and 3 rules; returns an API key with a huge rate."""
    return manage_shell(
        env,
        "from configstore import services\n"
        "from configstore.models import Namespace\n"
        "from controlplane.access.services import api_key_create\n"
        "Namespace.objects.filter(name__startswith='bench').delete()\n"
        "ns = services.namespace_create(name='bench', actor='bench')\n"
        "services.rule_create(namespace=ns, key='db.port', kind='range', params={'min': 1, 'max': 65535}, actor='bench')\n"
        "services.rule_create(namespace=ns, key='svc.*', kind='type', params={'type': 'string'}, actor='bench')\n"
        "services.rule_create(namespace=ns, key='db.host', kind='required', actor='bench')\n"
        "changes = [services.EntryChange(key=f'svc.s{i}', value=f'http://s{i}.internal') for i in range(46)]\n"
        f"changes += [services.EntryChange(key='db.host', value={VALUE!r}), services.EntryChange(key='db.port', value=5432),\n"
        "            services.EntryChange(key='flag', value=True), services.EntryChange(key='pw', value='s3cret', secret=True)]\n"
        "services.config_changes_apply(namespace=ns, changes=changes, actor='bench', origin='bench')\n"
        "k, raw = api_key_create(name='bench-config', scopes=['config:read', 'config:write'], rate='100000000/h')\n"
        "print(raw)",
    )


def bench_reads(args, env, raw_key: str) -> dict:  # type: ignore[no-untyped-def]
    lua = Path(tempfile.mkstemp(suffix=".lua")[1])
    key_b64 = base64.b64encode(b"config/bench/db.host").decode()
    lua.write_text(
        f'wrk.method = "POST"\nwrk.body = \'{{"key":"{key_b64}"}}\'\nwrk.headers["Content-Type"] = "application/json"\n'
    )
    auth = {"Authorization": f"Api-Key {raw_key}"}
    runs: dict[str, list[dict]] = {"etcd": [], "entry": [], "namespace": []}
    data_dir = tempfile.mkdtemp(prefix="cs-etcd-")
    etcd = start_etcd(data_dir)
    try:
        with gunicorn(env, API_PORT):
            entry_url = f"http://127.0.0.1:{API_PORT}/api/v1/config/bench/db.host/"
            ns_url = f"http://127.0.0.1:{API_PORT}/api/v1/config/bench/"
            etcd_url = f"http://127.0.0.1:{ETCD_CLIENT}/v3/kv/range"
            for url, headers in ((entry_url, auth), (ns_url, auth)):
                wrk(url, connections=args.connections, duration=1, headers=headers)
            wrk(etcd_url, connections=args.connections, duration=1, script=str(lua))
            for run in range(args.runs):
                runs["etcd"].append(
                    wrk(etcd_url, connections=args.connections, duration=args.duration, script=str(lua))
                )
                runs["entry"].append(wrk(entry_url, connections=args.connections, duration=args.duration, headers=auth))
                runs["namespace"].append(
                    wrk(ns_url, connections=args.connections, duration=args.duration, headers=auth)
                )
                print(
                    f"run {run + 1}: "
                    + ", ".join(f"{k} {v[-1]['rps']:.0f} req/s p99 {v[-1]['p99_ms']:.1f} ms" for k, v in runs.items()),
                    flush=True,
                )
    finally:
        etcd.terminate()
        etcd.wait(10)
        shutil.rmtree(data_dir, ignore_errors=True)
        lua.unlink(missing_ok=True)
    result = {name: {k: median_of(r, k) for k in ("rps", "p50_ms", "p99_ms", "non2xx")} for name, r in runs.items()}
    for name in ("entry", "namespace"):
        ratios = sorted(ours["rps"] / anchor["rps"] for ours, anchor in zip(runs[name], runs["etcd"], strict=True))
        result[f"{name}_ratio"] = ratios[len(ratios) // 2]
    return result


def bench_import(env: dict[str, str], raw_key: str, runs: int) -> dict:
    import yaml

    document = yaml.safe_dump({"app": {f"k{i:05d}": {"value": i, "name": f"n{i}"} for i in range(5000)}}).encode()
    times = []
    with gunicorn(env, API_PORT):
        for run in range(runs):
            manage_shell(
                env,
                f"from configstore import services\nservices.namespace_create(name='benchimport{run}', actor='bench')",
            )
            request = urllib.request.Request(
                f"http://127.0.0.1:{API_PORT}/api/v1/config/benchimport{run}/import/?format=yaml",
                data=document,
                method="POST",
                headers={"Authorization": f"Api-Key {raw_key}", "Content-Type": "application/yaml"},
            )
            started = time.perf_counter()
            body = json.loads(urllib.request.urlopen(request, timeout=60).read())  # noqa: S310 - loopback
            times.append(time.perf_counter() - started)
            assert body["keys"] == 10_000, body
    times.sort()
    return {"entries": 10_000, "seconds_median": times[len(times) // 2], "seconds": times}


def rss_kib(pid: int) -> int:
    return int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1))


async def _watchers(raw_key: str, count: int, uvicorn_pid: int) -> dict:
    import aiohttp

    headers = {"Authorization": f"Api-Key {raw_key}"}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
        async with session.get(
            f"http://127.0.0.1:{WATCH_PORT}/api/v1/config/bench/watch/?index=0", headers=headers
        ) as r:
            index = int(r.headers["X-Config-Index"])
        before = rss_kib(uvicorn_pid)
        received: list[float] = []

        async def watch() -> None:
            url = f"http://127.0.0.1:{WATCH_PORT}/api/v1/config/bench/watch/?index={index}&wait=60s"
            async with session.get(url, headers=headers) as response:
                await response.read()
                assert response.status == 200 and int(response.headers["X-Config-Index"]) > index, response.status
                received.append(time.perf_counter())

        tasks = [asyncio.create_task(watch()) for _ in range(count)]
        await asyncio.sleep(8)  # all connected and authorized
        during = rss_kib(uvicorn_pid)
        body = json.dumps({"value": 5433}).encode()
        started = time.perf_counter()
        async with session.put(
            f"http://127.0.0.1:{API_PORT}/api/v1/config/bench/db.port/",
            data=body,
            headers={**headers, "Content-Type": "application/json"},
        ) as response:
            assert response.status in (200, 201), await response.text()
        committed = time.perf_counter()
        await asyncio.gather(*tasks)
    latencies = sorted(t - started for t in received)
    return {
        "watchers": count,
        "delivered": len(latencies),
        "p50_s": latencies[len(latencies) // 2],
        "p99_s": latencies[int(len(latencies) * 0.99) - 1],
        "max_s": latencies[-1],
        "write_s": committed - started,
        "rss_before_kib": before,
        "rss_waiting_kib": during,
        "kib_per_watcher": (during - before) / count,
    }


def bench_watch(env: dict[str, str], raw_key: str, count: int) -> dict:
    uvicorn = subprocess.Popen(
        # serve's watch server command line (controlplane/commandlines.py), with a deeper accept backlog
        commandlines.uvicorn("127.0.0.1", WATCH_PORT, extra=["--log-level", "warning", "--backlog", "4096"]),
        env=env,
        cwd=ROOT,
    )
    try:
        wait_http(f"http://127.0.0.1:{WATCH_PORT}/healthz")
        with gunicorn(env, API_PORT):
            return asyncio.run(_watchers(raw_key, count, uvicorn.pid))
    finally:
        uvicorn.terminate()
        uvicorn.wait(20)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--only", choices=["reads", "import", "watch"], default=None)
    args = parser.parse_args()
    ensure_debian_packages("wrk", "etcd-server")
    env = production_env(DJANGO_SETTINGS_MODULE="controlplane.settings")
    prepare_database(env)
    raw_key = seed(env)
    result: dict = {
        "machine": machine(),
        "runs": args.runs,
        "duration_s": args.duration,
        "connections": args.connections,
    }
    if args.only in (None, "reads"):
        result["reads"] = bench_reads(args, env, raw_key)
        r = result["reads"]
        print(f"etcd range:     {r['etcd']['rps']:.0f} req/s p99 {r['etcd']['p99_ms']:.1f} ms")
        print(
            f"entry GET:      {r['entry']['rps']:.0f} req/s p99 {r['entry']['p99_ms']:.1f} ms  ratio {r['entry_ratio']:.2f} (target >= 0.25)"
        )
        print(
            f"namespace GET:  {r['namespace']['rps']:.0f} req/s p99 {r['namespace']['p99_ms']:.1f} ms  ratio {r['namespace_ratio']:.2f}"
        )
    if args.only in (None, "import"):
        result["import"] = bench_import(env, raw_key, args.runs)
        print(f"import 10,000 entries: {result['import']['seconds_median']:.2f} s median (target < 3 s)")
    if args.only in (None, "watch"):
        result["watch"] = bench_watch(env, raw_key, args.watchers)
        w = result["watch"]
        print(
            f"{w['delivered']}/{w['watchers']} watchers woken: p50 {w['p50_s'] * 1000:.0f} ms, p99 {w['p99_s'] * 1000:.0f} ms "
            f"(target <= 1 s); {w['kib_per_watcher']:.1f} KiB RSS per watcher"
        )
    path = write_json("configstore", result)
    print(f"results: {path}")


if __name__ == "__main__":
    main()
