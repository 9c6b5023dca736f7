"""The probe contract: a spec in, a `ProbeResult` out, one class per kind."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from controlplane.egress import EgressDenied, Purpose, check_host, check_ip


@dataclass
class ProbeSpec:
    """Everything a probe needs about one check, as plain data (built by the batch runner)."""

    check_id: int
    kind: str
    address: str
    port: int
    scheme: str = "http"
    timeout: float = 5.0
    method: str = "GET"
    path: str = "/"
    headers: dict[str, str] = field(default_factory=dict)
    expected: tuple[tuple[int, int], ...] = ((200, 299),)
    body_contains: str = ""
    store_body: bool = False
    tls_verify: bool = True
    follow_redirects: bool = False
    warn_latency_ms: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    due_at: float = 0.0  # epoch seconds the check was scheduled for

    @property
    def target_host(self) -> str:
        return str(self.params.get("host") or self.address)

    @property
    def target_port(self) -> int:
        return int(self.params.get("port") or self.port)


@dataclass
class ProbeResult:
    """One outcome: a status (passing/warning/critical), latency in ms and a short output."""

    status: str
    latency_ms: float | None
    output: str


@dataclass
class ProbeContext:
    """Shared per batch: the aiohttp session and the body limit."""

    session: Any = None
    max_body_bytes: int = 64 * 1024
    max_redirects: int = 3


class Probe:
    """Base class: implement `run`; `validate_params` returns field errors for `params`."""

    name: ClassVar[str] = ""
    custom: ClassVar[bool] = False  # selectable as a `custom` check's `probe`

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> dict[str, list[str]]:
        return {}

    async def run(self, spec: ProbeSpec, ctx: ProbeContext) -> ProbeResult:
        raise NotImplementedError


SECRET_PARAMS = frozenset({"password", "secret", "token"})


def redact_params(params: Any) -> Any:
    """Probe params for display, with credential values (a redis or postgres password) masked."""
    if not isinstance(params, dict):
        return params
    return {k: "********" if str(k).lower() in SECRET_PARAMS and v else v for k, v in params.items()}


def elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


async def resolve_allowed(host: str, port: int) -> list[str]:
    """Addresses for `host` that the egress guard allows (literal IPs are checked directly)."""
    check_host(host, purpose=Purpose.PROBE)
    literal = host.strip("[]")
    try:
        return [str(ipaddress.ip_address(literal))]  # no resolver round trip (a thread hop) for an IP
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    allowed: list[str] = []
    denied: EgressDenied | None = None
    for info in infos:
        address = info[4][0]
        try:
            check_ip(address, purpose=Purpose.PROBE)
        except EgressDenied as exc:
            denied = exc
            continue
        if address not in allowed:
            allowed.append(address)
    if not allowed:
        raise denied or EgressDenied(f"No address for {host}.")
    return allowed


async def open_checked(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, str]:
    """Connect to the first allowed address of `host`; returns the streams and the IP connected to."""
    last_error: Exception | None = None
    for address in await resolve_allowed(host, port):
        try:
            reader, writer = await asyncio.open_connection(address, port)
        except OSError as exc:
            last_error = exc
            continue
        check_ip(writer.get_extra_info("peername")[0], purpose=Purpose.PROBE)
        return reader, writer, address
    raise last_error or OSError(f"Could not connect to {host}:{port}")


async def close_writer(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
