"""Sending one outbound request through the egress guard, within a total deadline.

`http.client`'s timeout bounds each socket operation, so a target that sends a byte just before every
timeout holds the caller forever. Here the whole exchange (name resolution, connect, TLS, request, status
line, headers and the bounded body) runs under one `asyncio.timeout`, and aiohttp's `ClientTimeout(total=...)`
is set to the same budget: the attempt ends at the deadline whatever the target does.

The egress guard is applied as for every purpose: `check_url` refuses denied schemes, hosts and literal
addresses; the guard's resolver (`egress.aiohttp_resolver`) drops denied addresses, and aiohttp connects
only to what it returns. Proxies from the environment are not used (`trust_env` is off).
"""

from __future__ import annotations

import asyncio
import socket

import aiohttp

from controlplane.delivery.errors import (
    DeliveryDeadlineExceeded,
    DeliveryDenied,
    DeliveryDNSError,
    DeliveryNetworkError,
)
from controlplane.delivery.messages import OutboundRequest, OutboundResponse
from controlplane.egress import EgressDenied, Purpose, aiohttp_resolver, check_url

__all__ = ["OutboundRequest", "OutboundResponse", "send"]


def send(
    request: OutboundRequest, *, purpose: Purpose | str, deadline: float, max_bytes: int = 4096
) -> OutboundResponse:
    """Send `request` for `purpose`, finished or abandoned within `deadline` seconds in total.

    Raises `DeliveryDenied` (egress policy), `DeliveryDNSError`, `DeliveryDeadlineExceeded` or
    `DeliveryNetworkError`; never follows redirects.
    """
    purpose = Purpose(purpose)
    try:
        check_url(request.url, purpose=purpose)
    except EgressDenied as exc:
        raise DeliveryDenied(f"egress denied: {exc}") from None
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(_send(request, purpose, deadline, max_bytes))
    finally:
        # close() shuts the default executor down without waiting: a getaddrinfo stuck in a resolver
        # thread cannot hold the attempt past its deadline (asyncio.run would wait for it).
        loop.close()


async def _send(request: OutboundRequest, purpose: Purpose, deadline: float, max_bytes: int) -> OutboundResponse:
    try:
        async with asyncio.timeout(deadline):
            connector = aiohttp.TCPConnector(
                resolver=aiohttp_resolver(purpose), use_dns_cache=False, force_close=True, limit=1
            )
            timeout = aiohttp.ClientTimeout(total=deadline)
            async with aiohttp.ClientSession(
                connector=connector, timeout=timeout, auto_decompress=False, trust_env=False
            ) as session:
                async with session.request(
                    request.method, request.url, data=request.body, headers=request.headers, allow_redirects=False
                ) as response:
                    body = await _read_bounded(response, max_bytes)
                    headers = {k.lower(): v for k, v in response.headers.items()}
                    return OutboundResponse(response.status, headers, body)
    except EgressDenied as exc:
        raise DeliveryDenied(f"egress denied: {exc}") from None
    except TimeoutError:
        # asyncio.timeout and aiohttp's own timeouts (ServerTimeoutError is a TimeoutError) land here.
        raise DeliveryDeadlineExceeded(f"no complete answer within the {deadline:g} s deadline") from None
    except aiohttp.ClientConnectorDNSError as exc:
        raise DeliveryDNSError(f"cannot resolve {exc.host}: {exc.os_error}") from None
    except socket.gaierror as exc:
        raise DeliveryDNSError(f"cannot resolve the target: {exc}") from None
    except aiohttp.ClientConnectorError as exc:
        # host:port and the OS reason only; never the URL (a hook URL's path is often its secret).
        raise DeliveryNetworkError(f"cannot connect to {exc.host}:{exc.port}: {exc.os_error}") from None
    except (aiohttp.ClientError, OSError) as exc:
        raise DeliveryNetworkError(f"{type(exc).__name__}: {_without_url(str(exc), request.url)}"[:500]) from None


async def _read_bounded(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """The body up to its end or `max_bytes`, whichever comes first (a trickled body runs into the deadline)."""
    chunks, size = [], 0
    while size < max_bytes:
        chunk = await response.content.read(max_bytes - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _without_url(text: str, url: str) -> str:
    return text.replace(url, "<target>")
