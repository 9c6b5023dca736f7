"""ASGI entry for the config watch server: the watch path served natively, everything else by Django.

Django runs sync-only middleware around an async view by parking a thread per request, which would cost
one thread per waiting watcher. This wrapper answers `/api/v1/config/<ns>/watch/` itself (request id,
access log, metrics and `RateLimit-*` headers included) and hands every other request to the project's
ASGI application, so one port can still serve all routes in embedded mode.

    uvicorn configstore.asgi:application
"""

from __future__ import annotations

import logging
import os
import re
import time
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_application = get_asgi_application()

from django.core.handlers.asgi import ASGIRequest  # noqa: E402

from configstore.api.watch import watch_response  # noqa: E402
from controlplane.observability.context import reset_request_id, sane_request_id, set_request_id  # noqa: E402
from controlplane.observability.metrics import HTTP_LATENCY, HTTP_REQUESTS  # noqa: E402

WATCH_PATH = re.compile(r"^/api/v1/config/(?P<namespace>[^/]+)/watch/$")
ROUTE = "/api/v1/config/<str:namespace>/watch/"
access_log = logging.getLogger("controlplane.access")


async def _drain(receive: Any) -> None:
    """Read (and ignore) a request body; watch requests have none worth keeping."""
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body"):
            return


async def serve_watch(scope: dict, receive: Any, send: Any, namespace: str) -> None:
    """Answer one watch request without Django's sync middleware chain."""
    started = time.perf_counter()
    await _drain(receive)
    request = ASGIRequest(scope, _EmptyBody())
    request_id = sane_request_id(request.META.get("HTTP_X_REQUEST_ID"))
    token = set_request_id(request_id)
    try:
        response = await watch_response(request, namespace)
    finally:
        reset_request_id(token)
    elapsed = time.perf_counter() - started
    response["X-Request-ID"] = request_id
    usage = getattr(request, "ratelimit_usage", None)
    if usage is not None:
        response["RateLimit-Limit"] = str(usage.limit)
        response["RateLimit-Remaining"] = str(usage.remaining)
        response["RateLimit-Reset"] = str(usage.reset)
    HTTP_REQUESTS.labels(request.method, ROUTE, str(response.status_code)).inc()
    HTTP_LATENCY.labels(request.method, ROUTE).observe(elapsed)
    access_log.info(
        "%s %s %s",
        request.method,
        ROUTE,
        response.status_code,
        extra={
            "event": "access",
            "method": request.method,
            "path": request.path,
            "route": ROUTE,
            "status": response.status_code,
            "duration_ms": round(elapsed * 1000, 2),
            "key_prefix": getattr(request, "api_key_prefix", None),
        },
    )
    headers = [(b"content-type", response["Content-Type"].encode())]
    headers += [
        (name.lower().encode(), value.encode()) for name, value in response.items() if name.lower() != "content-type"
    ]
    body = response.content if request.method != "HEAD" else b""
    headers.append((b"content-length", str(len(response.content)).encode()))
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _EmptyBody:
    """A file-like empty body for ASGIRequest."""

    def read(self, *args: Any) -> bytes:
        return b""

    def readline(self, *args: Any) -> bytes:
        return b""

    def seek(self, *args: Any) -> int:
        return 0

    def close(self) -> None:
        return None


async def application(scope: dict, receive: Any, send: Any) -> None:
    """Route watch requests to `serve_watch`, the rest (and lifespan) to Django."""
    if scope["type"] == "http":
        match = WATCH_PATH.match(scope.get("path", ""))
        if match is not None:
            await serve_watch(scope, receive, send, match.group("namespace"))
            return
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    await django_application(scope, receive, send)


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
