"""HTTP probe: expected status -> passing, 429 -> warning, anything else -> critical.

Bounded: the caller's hard timeout, at most `max_body_bytes` read, redirects only when the check asks
(then at most `max_redirects` hops, each target re-checked by the egress guard).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urljoin

from controlplane.egress import check_url
from registry.health import status_expected
from registry.probes.base import Probe, ProbeContext, ProbeResult, ProbeSpec, elapsed_ms

REDIRECTS = {301, 302, 303, 307, 308}
USER_AGENT = "controlplane-health/1"


def check_target_url(spec: ProbeSpec) -> str:
    """The URL a check requests: its full-URL `path`, or `path` on the instance."""
    if spec.path.startswith(("http://", "https://")):
        return spec.path
    scheme = spec.scheme if spec.scheme in ("http", "https") else "http"
    host = f"[{spec.address}]" if ":" in spec.address else spec.address
    path = spec.path if spec.path.startswith("/") else "/" + spec.path
    return f"{scheme}://{host}:{spec.port}{path}"


async def _read_bounded(response: Any, limit: int) -> tuple[bytes, bool]:
    """Up to `limit` bytes of the body; the flag tells whether the whole body was read."""
    chunks, size = [], 0
    while size < limit:
        chunk = await response.content.read(limit - size)
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), response.content.at_eof()


class HttpProbe(Probe):
    """One request per check through the batch's shared aiohttp session."""

    name = "http"

    async def run(self, spec: ProbeSpec, ctx: ProbeContext) -> ProbeResult:
        url = check_target_url(spec)
        headers = {"User-Agent": USER_AGENT, **spec.headers}
        started = time.perf_counter()
        hops = 0
        while True:
            check_url(url)  # literal IPs skip the resolver, so they are checked here
            response = await ctx.session.request(
                spec.method, url, headers=headers, allow_redirects=False, ssl=spec.tls_verify
            )
            try:
                if spec.follow_redirects and response.status in REDIRECTS and "Location" in response.headers:
                    if hops >= ctx.max_redirects:
                        return ProbeResult(
                            "critical", elapsed_ms(started), f"Too many redirects (more than {ctx.max_redirects})."
                        )
                    hops += 1
                    url = urljoin(url, response.headers["Location"])
                    continue
                body, complete = await _read_bounded(response, ctx.max_body_bytes)
                status = response.status
                reason = response.reason or ""
            finally:
                if response.content.at_eof():
                    response.release()
                else:
                    response.close()  # unread body: drop the connection rather than drain it
            break
        latency = elapsed_ms(started)
        summary = f"HTTP {spec.method} {url}: {status} {reason}".rstrip()
        text = body.decode("utf-8", "replace")
        output = f"{summary}\n{text}" if text else summary
        if status == 429:
            return ProbeResult("warning", latency, output)
        if not status_expected(status, spec.expected):
            return ProbeResult("critical", latency, output)
        if spec.body_contains and spec.body_contains not in text:
            note = "" if complete else f" (first {len(body)} bytes read)"
            return ProbeResult("critical", latency, f"{summary}; body does not contain {spec.body_contains!r}{note}")
        if spec.warn_latency_ms is not None and latency > spec.warn_latency_ms:
            return ProbeResult(
                "warning", latency, f"{summary}; latency {latency:.0f} ms > {spec.warn_latency_ms} ms\n{text}"
            )
        return ProbeResult("passing", latency, output)
