"""Runs probes concurrently on one event loop: bounded concurrency, hard timeouts, one aiohttp session.

Pure I/O, no ORM: specs in, results out, so the batch task can load and save around it.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from controlplane.egress import EgressDenied, Purpose, aiohttp_resolver
from registry.health import CRITICAL
from registry.metrics import DISPATCH_LAG, PROBE_LATENCY, PROBES_RUN
from registry.probes import PROBE_KINDS, ProbeContext, ProbeResult, ProbeSpec


def _failure(spec: ProbeSpec, exc: BaseException, started: float) -> ProbeResult:
    latency = round((time.perf_counter() - started) * 1000, 3)
    if isinstance(exc, TimeoutError):
        return ProbeResult(CRITICAL, latency, f"Timed out after {spec.timeout:g} s.")
    if isinstance(exc, EgressDenied):
        return ProbeResult(CRITICAL, None, f"Refused by the egress guard: {exc}")
    return ProbeResult(CRITICAL, latency, f"{type(exc).__name__}: {exc}"[:1000])


async def _run_one(spec: ProbeSpec, ctx: ProbeContext, gate: asyncio.Semaphore) -> ProbeResult:
    wait = spec.due_at - time.time()
    if wait > 0:  # claimed ahead of time (dispatcher lookahead): start on schedule
        await asyncio.sleep(wait)
    async with gate:
        DISPATCH_LAG.observe(max(0.0, time.time() - spec.due_at) if spec.due_at else 0.0)
        probe = PROBE_KINDS[spec.kind]()
        started = time.perf_counter()
        try:
            async with asyncio.timeout(spec.timeout):
                result = await probe.run(spec, ctx)
        except Exception as exc:  # noqa: BLE001 - every failure is a critical result, never a crash
            result = _failure(spec, exc, started)
    if result.latency_ms is not None:
        PROBE_LATENCY.labels(spec.kind).observe(result.latency_ms / 1000)
    return result


async def run_probes(
    specs: list[ProbeSpec], *, concurrency: int = 128, max_body_bytes: int = 64 * 1024, max_redirects: int = 3
) -> list[ProbeResult]:
    """Probe every spec (at most `concurrency` at once) and return results in the same order."""
    import aiohttp

    connector = aiohttp.TCPConnector(resolver=aiohttp_resolver(Purpose.PROBE), limit=concurrency, ttl_dns_cache=30)
    async with aiohttp.ClientSession(
        connector=connector, auto_decompress=False, skip_auto_headers=("Accept-Encoding",)
    ) as session:
        ctx = ProbeContext(session=session, max_body_bytes=max_body_bytes, max_redirects=max_redirects)
        gate = asyncio.Semaphore(concurrency)
        results = list(await asyncio.gather(*(_run_one(spec, ctx, gate) for spec in specs)))
    # One counter update per (kind, result) per batch rather than per probe.
    for (kind, status), count in Counter(
        (spec.kind, result.status) for spec, result in zip(specs, results, strict=True)
    ).items():
        PROBES_RUN.labels(kind, status).inc(count)
    return results


def run_probes_sync(specs: list[ProbeSpec], **kwargs) -> list[ProbeResult]:  # type: ignore[no-untyped-def]
    """`run_probes` from synchronous code (a Celery task or a view) on a fresh event loop."""
    if not specs:
        return []
    return asyncio.run(run_probes(specs, **kwargs))
