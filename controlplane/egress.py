"""The egress guard: every outbound request (probes, webhooks, pipeline deliveries, notifications) goes here.

One policy per purpose (`Purpose`):
- every purpose refuses `EGRESS_DENY_NETWORKS` (link-local, 0.0.0.0/8, the cloud metadata addresses,
  multicast, broadcast, reserved) and the host names in `EGRESS_DENY_HOSTS`;
- `probe` may reach loopback and private networks: checking internal services is its job;
- `webhook`, `delivery` and `notification` also refuse `EGRESS_PRIVATE_NETWORKS` (loopback, RFC 1918,
  CGNAT 100.64/10, unique-local fc00::/7) unless `EGRESS_ALLOW_PRIVATE` is on (the embedded default) or
  the address is in `EGRESS_ALLOW_NETWORKS` (the rule Healthchecks.io follows for integrations).

IPv6 forms that carry an IPv4 address (IPv4-mapped, IPv4-compatible, IPv4-translated ::ffff:0:0:0/96,
NAT64 64:ff9b::/96 and the 64:ff9b:1::/48 local-use prefix, 6to4 2002::/16, Teredo 2001::/32) are checked as that IPv4 address too,
so `::ffff:127.0.0.1` is loopback and `2002:a9fe:a9fe::1` is the metadata address.

Names are resolved here and the connection is made to the checked address itself (and the peer address
is checked again after connecting), so DNS cannot swap in a denied address between check and connect.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # SIIT (RFC 2765), ::ffff:0:a.b.c.d


class Purpose(StrEnum):
    """Why a request leaves the control plane; each purpose has its own egress policy."""

    PROBE = "probe"
    WEBHOOK = "webhook"
    DELIVERY = "delivery"
    NOTIFICATION = "notification"


class EgressDenied(Exception):
    """An outbound request was refused by the egress guard."""


@lru_cache(maxsize=16)
def _networks(spec: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in spec)


def _in_any(ip: IPAddress, networks: tuple[IPNetwork, ...]) -> IPNetwork | None:
    return next((net for net in networks if ip.version == net.version and ip in net), None)


def embedded_ipv4(ip: IPAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (and would reach through a translator or tunnel)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    found: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:  # ::a.b.c.d (deprecated, still routed by some stacks); not :: or ::1
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip in _IPV4_TRANSLATED or ip in _NAT64_WELL_KNOWN:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip in _NAT64_LOCAL_USE:
        # RFC 6052 lets a local-use prefix be /48 (v4 in bits 48-63 and 72-87, around the u-octet) or /96
        # (v4 in the last 32 bits); either may be in use, so both readings are checked.
        value = int(ip)
        found.append(ipaddress.IPv4Address(((value >> 64) & 0xFFFF) << 16 | (value >> 40) & 0xFFFF))
        found.append(ipaddress.IPv4Address(value & 0xFFFFFFFF))
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)  # (server, client); the client address is de-obfuscated by ipaddress
    return found


def private_allowed(purpose: Purpose | str) -> bool:
    """Whether `purpose` may reach `EGRESS_PRIVATE_NETWORKS` at all (outside `EGRESS_ALLOW_NETWORKS`)."""
    return Purpose(purpose) is Purpose.PROBE or bool(settings.EGRESS_ALLOW_PRIVATE)


def _check_one(ip: IPAddress, purpose: Purpose, shown: IPAddress) -> None:
    label = str(shown) if ip == shown else f"{shown} (carrying {ip})"
    denied = _in_any(ip, _networks(tuple(settings.EGRESS_DENY_NETWORKS)))
    if denied is not None:
        raise EgressDenied(f"{label} is in a denied network ({denied}).")
    if private_allowed(purpose):
        return
    private = _in_any(ip, _networks(tuple(settings.EGRESS_PRIVATE_NETWORKS)))
    if private is not None and _in_any(ip, _networks(tuple(settings.EGRESS_ALLOW_NETWORKS))) is None:
        raise EgressDenied(
            f"{label} is in a private network ({private}); {purpose} targets must be public "
            "unless listed in EGRESS_ALLOW_NETWORKS."
        )


def check_ip(address: str | IPAddress, *, purpose: Purpose | str = Purpose.WEBHOOK) -> IPAddress:
    """Raise `EgressDenied` unless `address` (and every IPv4 address it carries) may be connected to."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0]) if isinstance(address, str) else address
    except ValueError:
        raise EgressDenied(f"{address!r} is not an IP address.") from None
    purpose = Purpose(purpose)
    for candidate in (ip, *embedded_ipv4(ip)):
        _check_one(candidate, purpose, ip)
    return ip


def check_host(host: str, *, purpose: Purpose | str = Purpose.WEBHOOK) -> None:
    """Refuse metadata host names and literal IPs the policy denies (names are checked on resolve)."""
    name = host.strip("[]").rstrip(".").lower()
    if not name:
        raise EgressDenied("The target has no host.")
    if name in {h.lower().rstrip(".") for h in settings.EGRESS_DENY_HOSTS}:
        raise EgressDenied(f"The host {name} is denied.")
    try:
        ip = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return
    check_ip(ip, purpose=purpose)


@dataclass(frozen=True)
class Target:
    """A checked outbound URL."""

    scheme: str
    host: str
    port: int
    path: str


def check_url(
    url: str, *, purpose: Purpose | str = Purpose.WEBHOOK, schemes: tuple[str, ...] = ("http", "https")
) -> Target:
    """Parse and check a URL: allowed scheme, a host, not a denied host or literal address for `purpose`."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise EgressDenied(f"Malformed URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        raise EgressDenied(f"Scheme {scheme or '(none)'} is not allowed; use {', '.join(schemes)}.")
    host = parts.hostname or ""
    check_host(host, purpose=purpose)
    default_port = {"http": 80, "https": 443}.get(scheme, 0)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(scheme, host, port or default_port, path)


def resolve_checked(host: str, port: int, *, purpose: Purpose | str = Purpose.WEBHOOK) -> list[tuple[Any, ...]]:
    """getaddrinfo for `host`, keeping only addresses `purpose` may reach; raises when none is left."""
    check_host(host, purpose=purpose)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise EgressDenied(f"Cannot resolve {host}: {exc}") from None
    allowed, last_error = [], None
    for info in infos:
        try:
            check_ip(info[4][0], purpose=purpose)
            allowed.append(info)
        except EgressDenied as exc:
            last_error = exc
    if not allowed:
        raise last_error or EgressDenied(f"No address for {host}.")
    return allowed


def _connect_checked(host: str, port: int, timeout: float, purpose: Purpose) -> socket.socket:
    last_error: Exception | None = None
    for family, socktype, proto, _, sockaddr in resolve_checked(host, port, purpose=purpose):
        sock = socket.socket(family, socktype, proto)
        sock.settimeout(timeout)
        try:
            sock.connect(sockaddr)
            check_ip(sock.getpeername()[0], purpose=purpose)  # the address actually connected to
            return sock
        except EgressDenied:
            sock.close()
            raise
        except OSError as exc:
            last_error = exc
            sock.close()
    raise last_error or OSError(f"Could not connect to {host}:{port}")


class _GuardedHTTPConnection(http.client.HTTPConnection):
    purpose: Purpose = Purpose.WEBHOOK

    def connect(self) -> None:
        self.sock = _connect_checked(self.host, self.port, self.timeout, self.purpose)  # type: ignore[arg-type]


class _GuardedHTTPSConnection(http.client.HTTPSConnection):
    purpose: Purpose = Purpose.WEBHOOK

    def connect(self) -> None:
        raw = _connect_checked(self.host, self.port, self.timeout, self.purpose)  # type: ignore[arg-type]
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
    purpose: Purpose | str = Purpose.WEBHOOK,
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
    purpose = Purpose(purpose)
    target = check_url(url, purpose=purpose)
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
    conn.purpose = purpose  # type: ignore[attr-defined]
    try:
        conn.request(method, target.path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read(max_bytes)
        return EgressResponse(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    finally:
        conn.close()


def aiohttp_resolver(purpose: Purpose | str = Purpose.PROBE):  # type: ignore[no-untyped-def]
    """An aiohttp resolver that drops addresses `purpose` may not reach, for probes and async deliveries.

    aiohttp connects only to what the resolver returns, so filtering here checks the connected IP;
    literal-IP URLs skip the resolver, which is why callers also run `check_url` first.
    """
    from aiohttp.abc import AbstractResolver
    from aiohttp.resolver import ThreadedResolver

    class GuardedResolver(AbstractResolver):
        def __init__(self) -> None:
            self._inner = ThreadedResolver()

        async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET):  # type: ignore[no-untyped-def]
            check_host(host, purpose=purpose)
            results = await self._inner.resolve(host, port, family)
            allowed, denied = [], None
            for item in results:
                try:
                    check_ip(item["host"], purpose=purpose)
                    allowed.append(item)
                except EgressDenied as exc:
                    denied = exc
            if not allowed:
                # Not an OSError: aiohttp would report that as a DNS failure and drop the reason.
                raise EgressDenied(f"every address of {host} is refused ({denied or 'none resolved'})")
            return allowed

        async def close(self) -> None:
            await self._inner.close()

    return GuardedResolver()
