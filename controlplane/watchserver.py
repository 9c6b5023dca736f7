"""The watch server: blocking queries (config watch, discovery) through Django's own request handling, async.

Django's `ASGIHandler` would serve an async view too, but around it runs every sync-only middleware and
the `request_started`/`request_finished` signal receivers on a thread, per request — one thread hop each
way for every one of 10,000 watchers woken by one change. So the watch routes get their own
`BaseHandler` whose middleware chain is the project's `MIDDLEWARE`, in the same order, minus what a
keyed GET on these routes never uses (`SKIPPED`: static files, sessions, CSRF, user auth, messages);
each one runs in the event loop:

- the project's own middleware (tracing, problem+json, input boundary) is written once for both modes
  (`controlplane.dualmiddleware`);
- Django's header-only middleware (`INLINE`: security headers, host validation, X-Frame-Options) has
  its `process_request`/`process_response` called directly: they never block, Django just cannot know.

Anything else in `MIDDLEWARE` runs through Django's usual adaptation (correct, only slower), so a new
middleware applies here too without anyone remembering this file. URL resolution (`WATCH_URLCONF`), the
exception-to-response conversion and `process_exception` hooks are Django's. Database work (auth, reads)
runs on the watch hub's few threads (`controlplane.watchhub`).
"""

from __future__ import annotations

import io
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.core.handlers.base import BaseHandler
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string

WATCH_URLCONF = "controlplane.watch_urls"
SKIPPED = frozenset(
    {
        "whitenoise.middleware.WhiteNoiseMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "controlplane.fastpaths.LazyMessageMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
    }
)
INLINE = frozenset(
    {
        "django.middleware.security.SecurityMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
    }
)
_CONFIG_WATCH = re.compile(r"^/api/v1/config/[^/]+/watch/$")
_DISCOVER = re.compile(r"^/api/v1/discover/[^/]+/$")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def is_watch(scope: Scope) -> bool:
    """Whether this request is a blocking query served here (else Django's ASGI application serves it)."""
    path = scope.get("path", "")
    if _CONFIG_WATCH.match(path):
        return True
    if _DISCOVER.match(path):
        # Discovery with `index` is a blocking query; without it, the ordinary (DRF) discovery read.
        query = scope.get("query_string", b"").decode("latin-1")
        return "index" in query and any(name == "index" for name, _ in parse_qsl(query, keep_blank_values=True))
    return False


def watch_middleware() -> list[str]:
    """The project's middleware as it applies to the watch routes (settings order)."""
    return [path for path in settings.MIDDLEWARE if path not in SKIPPED]


class InlineMiddleware:
    """Runs a Django `MiddlewareMixin` whose hooks only read the request and set headers, in the loop."""

    sync_capable = False
    async_capable = True

    def __init__(self, middleware_class: type, get_response: Callable[[HttpRequest], Awaitable[HttpResponse]]) -> None:
        self.get_response = get_response
        # Built around a sync placeholder: its own async path would hop to a thread per hook.
        self.middleware = middleware_class(lambda request: None)
        self.process_request = getattr(self.middleware, "process_request", None)
        self.process_response = getattr(self.middleware, "process_response", None)
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.process_request(request) if self.process_request else None
        if response is None:
            response = await self.get_response(request)
        if self.process_response:
            response = self.process_response(request, response)
        return response


class WatchHandler(BaseHandler):
    """Django's handler for the watch routes, every middleware in the event loop (see the module doc)."""

    def load_middleware(self, is_async: bool = True) -> None:
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        handler = convert_exception_to_response(self._get_response_async)
        for path in reversed(watch_middleware()):
            middleware = import_string(path)
            if path in INLINE:
                instance: Any = InlineMiddleware(middleware, handler)
            else:
                inner = handler
                if not getattr(middleware, "async_capable", False):
                    inner = self.adapt_method_mode(False, handler, True)
                instance = middleware(inner)
                if not iscoroutinefunction(instance):
                    instance = self.adapt_method_mode(True, instance, False)
            target = getattr(instance, "middleware", instance)
            if hasattr(target, "process_view"):
                self._view_middleware.insert(0, self.adapt_method_mode(True, target.process_view))
            if hasattr(target, "process_template_response"):
                self._template_response_middleware.append(
                    self.adapt_method_mode(True, target.process_template_response)
                )
            if hasattr(target, "process_exception"):
                # Django's exception-handling stack is synchronous (run on a thread), as in its handler.
                self._exception_middleware.append(self.adapt_method_mode(False, target.process_exception))
            handler = convert_exception_to_response(instance)
        self._middleware_chain = handler


_handler: WatchHandler | None = None


def handler() -> WatchHandler:
    global _handler
    if _handler is None:
        built = WatchHandler()
        built.load_middleware(is_async=True)
        _handler = built
    return _handler


async def _read_body(receive: Receive) -> bytes:
    """The request body (the body limit in front, `controlplane.asgi_bounds`, has capped its size)."""
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(parts)


async def serve(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer one watch request through `WatchHandler` and send the response."""
    body = await _read_body(receive)
    request = ASGIRequest(scope, io.BytesIO(body))
    request.urlconf = WATCH_URLCONF  # type: ignore[attr-defined]
    response = await handler().get_response_async(request)
    headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in response.items()]
    for cookie in response.cookies.values():
        headers.append((b"set-cookie", cookie.output(header="").strip().encode("ascii")))
    content = response.content
    if "Content-Length" not in response:
        headers.append((b"content-length", str(len(content)).encode()))
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if request.method == "HEAD" else content})
    closers = [closer for closer in response._resource_closers if closer != request.close]
    if closers:
        # e.g. the request metrics' flush, which writes: on the hub's threads, never in the loop.
        from controlplane.watchhub import executor

        executor().submit(_close_all, closers)


def _close_all(closers: list[Callable[[], Any]]) -> None:
    for closer in closers:
        closer()
