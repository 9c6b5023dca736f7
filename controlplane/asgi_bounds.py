"""The body limit in front of the ASGI application (uvicorn), where Django would spool any body first.

Django's `ASGIHandler` reads the whole request body into a temporary file (memory, then disk) before
the middleware chain — and the input boundary's 413 — ever runs, so under uvicorn an oversized body
cost memory and disk even though it was refused afterwards. This wrapper answers 413 problem+json:

- at once, before reading, when `Content-Length` declares more than the limit on an API path (the admin
  keeps Django's own handling: file uploads do not count against DATA_UPLOAD_MAX_MEMORY_SIZE);
- as soon as a body without `Content-Length` (chunked) passes the limit, on any path.

A chunked body within the limit is handed to Django whole, as before; `InputBoundaryMiddleware` then
checks it like any other body.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def _limit() -> int:
    from controlplane.inputs import body_limit

    return body_limit()


async def _too_large(send: Send, limit: int) -> None:
    from controlplane.errors import closing_problem

    headers, body = closing_problem(413, f"The request body exceeds {limit} bytes.", code="payload_too_large")
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """ASGI wrapper refusing bodies over the limit before Django spools them."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        limit = _limit()
        if declared is not None:
            if declared.isdigit() and int(declared) > limit and scope.get("path", "").startswith("/api/"):
                await _too_large(send, limit)
                return
            await self.app(scope, receive, send)
            return
        if b"transfer-encoding" not in headers:
            await self.app(scope, receive, send)
            return
        # Unsized (chunked): read it here, within the limit, and replay it to the application.
        messages: list[dict[str, Any]] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                messages.append(message)  # a disconnect: let the application see it
                break
            size += len(message.get("body", b""))
            if size > limit:
                await _too_large(send, limit)
                return
            messages.append(message)
            if not message.get("more_body"):
                break

        async def replay() -> dict[str, Any]:
            if messages:
                return messages.pop(0)
            return await receive()

        await self.app(scope, replay, send)
