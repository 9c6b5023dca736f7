"""The fan-out floor: a bare ASGI app holding every request on one `asyncio.Event`, for bench/watch_fanout.py.

No Django, no database, no auth: `GET /wait` parks until `GET /fire` sets the event, then answers a fixed
body of about the config answer's size with as many headers as the watch server sends. Served by the
same uvicorn command line as the watch server (`controlplane.commandlines.uvicorn`), so the difference
between the two is what the control plane's watch path costs on top of uvicorn and asyncio.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

BODY = b'{"db":{"port":5432},"svc":{' + b",".join(b'"s%d":"http://s%d.internal"' % (i, i) for i in range(20)) + b"}}"
HEADERS = [
    (b"content-type", b"application/json"),
    (b"x-config-index", b"2"),
    (b"etag", b'"2"'),
    (b"cache-control", b"no-store"),
    (b"x-frame-options", b"DENY"),
    (b"content-length", str(len(BODY)).encode()),
    (b"ratelimit-limit", b"100000000"),
    (b"ratelimit-remaining", b"99999999"),
    (b"ratelimit-reset", b"186"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"x-request-id", b"e4503d5bd751e16106c37bc65f657152"),
    (b"server-timing", b"app;dur=0.10"),
]
_event: asyncio.Event | None = None


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """`/wait` waits for `/fire`; `/fire` and `/healthz` answer at once; `/reset` re-arms the event."""
    global _event
    if scope["type"] != "http":
        return
    if _event is None:
        _event = asyncio.Event()
    path = scope["path"]
    if path == "/wait":
        await _event.wait()
    elif path == "/fire":
        # As the watch hub does before a burst (`WatchHub._freeze_for_burst`): the cyclic GC would otherwise
        # traverse every waiting request's objects, again and again, while the answers go out.
        gc.freeze()
        _event.set()
    elif path == "/reset":
        _event = asyncio.Event()
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
