"""HTTP probe: expected status -> passing, 429 -> warning, anything else -> critical.

Bounded: the caller's hard timeout, at most `max_body_bytes` read, redirects only when the check asks
(then at most `max_redirects` hops, each target re-checked by the egress guard).

Probes may reach loopback and private networks (checking internal services is their job), so what a
check can send and what it keeps is limited to what a health check needs: GET, HEAD or OPTIONS; no
headers that steer routing, framing or sessions (Host, Content-Length, Transfer-Encoding, Cookie ...);
and the response body goes into the output (readable with `registry:read`) only when the check sets
`store_body`. `body_contains` is matched on the body without storing it.
"""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import urljoin

from controlplane.egress import Purpose, check_url
from registry.health import status_expected
from registry.probes.base import Probe, ProbeContext, ProbeResult, ProbeSpec, elapsed_ms

REDIRECTS = {301, 302, 303, 307, 308}
USER_AGENT = "controlplane-health/1"
# A health check reads; it has no reason to change state on the target.
PROBE_METHODS = ("GET", "HEAD", "OPTIONS")
# Set by the HTTP client (routing, framing, connection management) or a way to act as someone else's
# session or proxy client on an internal service. Authorization stays allowed: health endpoints use it.
FORBIDDEN_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "expect",
        "cookie",
        "proxy-authorization",
        "proxy-connection",
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-real-ip",
    }
)
SENSITIVE_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "x-auth-token"})
MAX_HEADERS = 20
MAX_HEADER_VALUE = 1000
_TOKEN = re.compile(r"\A[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}\Z")  # RFC 9110 field-name
_REASON_LIMIT = 100


def http_check_errors(method: str, headers: Any) -> dict[str, list[str]]:
    """Field errors for an HTTP check's method and headers under the probe policy (empty when allowed)."""
    errors: dict[str, list[str]] = {}
    if method not in PROBE_METHODS:
        errors["method"] = [f"Choose one of {', '.join(PROBE_METHODS)}."]
    if not isinstance(headers, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        errors["headers"] = ["Give an object of header names to string values."]
        return errors
    problems = []
    if len(headers) > MAX_HEADERS:
        problems.append(f"At most {MAX_HEADERS} headers.")
    for name, value in headers.items():
        if not _TOKEN.match(name):
            problems.append(f"{name[:40]!r} is not a valid header name.")
        elif name.lower() in FORBIDDEN_HEADERS:
            problems.append(f"A check may not set {name}.")
        if len(value) > MAX_HEADER_VALUE or any(ch in value for ch in "\r\n\x00"):
            problems.append(f"The value of {name[:40]!r} must be one line of at most {MAX_HEADER_VALUE} characters.")
    if problems:
        errors["headers"] = problems
    return errors


def redact_headers(headers: Any) -> Any:
    """Headers for display: credential values replaced, so a reader of the check never sees them."""
    if not isinstance(headers, dict):
        return headers
    return {k: "********" if str(k).lower() in SENSITIVE_HEADERS else v for k, v in headers.items()}


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
        refused = http_check_errors(spec.method, spec.headers)
        if refused:  # a row written before the policy (or behind the services' back) is not sent
            detail = "; ".join(message for messages in refused.values() for message in messages)
            return ProbeResult("critical", None, f"Refused by the probe policy: {detail}")
        headers = {"User-Agent": USER_AGENT, **spec.headers}
        started = time.perf_counter()
        hops = 0
        while True:
            check_url(url, purpose=Purpose.PROBE)  # literal IPs skip the resolver, so they are checked here
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
        summary = f"HTTP {spec.method} {url}: {status} {reason[:_REASON_LIMIT]}".rstrip()
        text = body.decode("utf-8", "replace")
        kept = f"\n{text}" if text and spec.store_body else ""
        output = summary + kept
        if status == 429:
            return ProbeResult("warning", latency, output)
        if not status_expected(status, spec.expected):
            return ProbeResult("critical", latency, output)
        if spec.body_contains and spec.body_contains not in text:
            note = "" if complete else f" (first {len(body)} bytes read)"
            return ProbeResult("critical", latency, f"{summary}; body does not contain {spec.body_contains!r}{note}")
        if spec.warn_latency_ms is not None and latency > spec.warn_latency_ms:
            return ProbeResult(
                "warning", latency, f"{summary}; latency {latency:.0f} ms > {spec.warn_latency_ms} ms{kept}"
            )
        return ProbeResult("passing", latency, output)
