"""The egress guard: every outbound request (probes, webhooks, pipeline deliveries) goes through here.

Rules (DESIGN): schemes http/https (tcp for probes); the IP actually connected to is checked against
`EGRESS_DENY_NETWORKS` (and `EGRESS_ALLOW_NETWORKS` when set); metadata host names are refused; no
redirects unless asked; bounded time and bytes. Names are resolved here and the connection is made to
the checked address itself, so DNS cannot swap in a denied address between check and connect.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class EgressDenied(Exception):
    """An outbound request was refused by the egress guard."""


@lru_cache(maxsize=8)
def _networks(spec: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in spec)


def check_ip(address: str | IPAddress) -> IPAddress:
    """Raise `EgressDenied` unless `address` may be connected to."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for network in _networks(tuple(settings.EGRESS_DENY_NETWORKS)):
        if ip.version == network.version and ip in network:
            raise EgressDenied(f"{ip} is in a denied network ({network}).")
    allow = _networks(tuple(settings.EGRESS_ALLOW_NETWORKS))
    if allow and not any(ip.version == net.version and ip in net for net in allow):
        raise EgressDenied(f"{ip} is not in an allowed network.")
    return ip


def check_host(host: str) -> None:
    """Refuse metadata host names and literal IPs in denied networks (names are checked on resolve)."""
    name = host.strip("[]").rstrip(".").lower()
    if not name:
        raise EgressDenied("The target has no host.")
    if name in {h.lower() for h in settings.EGRESS_DENY_HOSTS}:
        raise EgressDenied(f"The host {name} is denied.")
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return
    check_ip(ip)


@dataclass(frozen=True)
class Target:
    """A checked outbound URL."""

    scheme: str
    host: str
    port: int
    path: str


def check_url(url: str, *, schemes: tuple[str, ...] = ("http", "https")) -> Target:
    """Parse and check a URL: allowed scheme, a host, not a denied host or literal address."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise EgressDenied(f"Malformed URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        raise EgressDenied(f"Scheme {scheme or '(none)'} is not allowed; use {', '.join(schemes)}.")
    host = parts.hostname or ""
    check_host(host)
    default_port = {"http": 80, "https": 443}.get(scheme, 0)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(scheme, host, port or default_port, path)


def resolve_checked(host: str, port: int) -> list[tuple[Any, ...]]:
    """getaddrinfo for `host`, keeping only allowed addresses; raises when none is left."""
    check_host(host)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise EgressDenied(f"Cannot resolve {host}: {exc}") from None
    allowed, last_error = [], None
    for info in infos:
        try:
            check_ip(info[4][0])
            allowed.append(info)
        except EgressDenied as exc:
            last_error = exc
    if not allowed:
        raise last_error or EgressDenied(f"No address for {host}.")
    return allowed


def _connect_checked(host: str, port: int, timeout: float) -> socket.socket:
    last_error: Exception | None = None
    for family, socktype, proto, _, sockaddr in resolve_checked(host, port):
        sock = socket.socket(family, socktype, proto)
        sock.settimeout(timeout)
        try:
            sock.connect(sockaddr)
            check_ip(sock.getpeername()[0])  # the address actually connected to
            return sock
        except OSError as exc:
            last_error = exc
            sock.close()
    raise last_error or OSError(f"Could not connect to {host}:{port}")


class _GuardedHTTPConnection(http.client.HTTPConnection):
    def connect(self) -> None:
        self.sock = _connect_checked(self.host, self.port, self.timeout)  # type: ignore[arg-type]


class _GuardedHTTPSConnection(http.client.HTTPSConnection):
    def connect(self) -> None:
        raw = _connect_checked(self.host, self.port, self.timeout)  # type: ignore[arg-type]
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]


@dataclass
class EgressResponse:
    """What came back from a guarded request (body bounded by `max_bytes`)."""

    status: int
    headers: dict[str, str]
    body: bytes


def guarded_request(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
    max_bytes: int = 64 * 1024,
    verify_tls: bool = True,
) -> EgressResponse:
    """A synchronous HTTP request through the guard; never follows redirects.

    Raises `EgressDenied` for a refused target and `OSError`/`http.client.HTTPException` for network
    failures; the caller decides what a failure means (retry, critical, ...).
    """
    target = check_url(url)
    if target.scheme == "https":
        context = ssl.create_default_context()
        if not verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        conn: http.client.HTTPConnection = _GuardedHTTPSConnection(
            target.host, target.port, timeout=timeout, context=context
        )
    else:
        conn = _GuardedHTTPConnection(target.host, target.port, timeout=timeout)
    try:
        conn.request(method, target.path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read(max_bytes)
        return EgressResponse(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    finally:
        conn.close()


def aiohttp_resolver():  # type: ignore[no-untyped-def]
    """An aiohttp resolver that drops denied addresses, for probes and async deliveries.

    aiohttp connects only to what the resolver returns, so filtering here checks the connected IP;
    literal-IP URLs skip the resolver, which is why callers also run `check_url` first.
    """
    from aiohttp.abc import AbstractResolver
    from aiohttp.resolver import ThreadedResolver

    class GuardedResolver(AbstractResolver):
        def __init__(self) -> None:
            self._inner = ThreadedResolver()

        async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET):  # type: ignore[no-untyped-def]
            check_host(host)
            results = await self._inner.resolve(host, port, family)
            allowed = []
            for item in results:
                try:
                    check_ip(item["host"])
                    allowed.append(item)
                except EgressDenied:
                    continue
            if not allowed:
                raise OSError(f"egress guard: every address of {host} is denied")
            return allowed

        async def close(self) -> None:
            await self._inner.close()

    return GuardedResolver()
