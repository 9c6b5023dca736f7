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

Answers after a wait are *replayed* (`after_wait`): one change wakes every watcher of a namespace at
once, and each would build the same response and run it out through the same middleware, which adds
the same headers — about 60 µs of CPU each, 0.6 s for 10,000 watchers before uvicorn writes anything.
So the first woken watcher of a (name, filters, index, visibility, https) takes the full path, and the
watch server records what came out (status, headers, body) minus the per-request headers
(`PER_REQUEST_HEADERS`); every later one gets that recording with its own per-request headers (request
id, `Server-Timing`, rate-limit usage), its metrics and access line (`record_request`, the tracing
middleware's own), without a response object or the chain. Its key is re-checked first, as always.
Replay is on only while every middleware of the chain is one whose response hooks are known to add
nothing else per request (`REPLAYABLE`); a middleware added to the settings switches it off.

Replayed answers are also *expressed* (`Express`): once the first woken watcher's answer is recorded,
every other watcher woken by the same change that gets that answer is written at once, from that one
step of the event loop, through the server's `send_whole` (`controlplane.uvicorn_http`, an ASGI scope
extension), before any of their tasks resumes; each task then only finishes up (metrics, access line).
The 10,000th answer then leaves after 10,000 socket writes rather than after 10,000 resumed coroutines
unwinding the middleware chain. Each watcher's key is re-checked first from the cache
(`watchauth.recheck_cached`); whenever that cannot decide (no trusted generation, a key changed
anywhere), the watcher is refused, the server cannot take the write, or there is no `send_whole` (tests,
other servers), the watcher is left to its task and answered the usual way.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, NoReturn
from urllib.parse import parse_qsl

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.core.handlers.base import BaseHandler
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string

from controlplane.observability.middleware import record_request, server_timing
from controlplane.uvicorn_http import WHOLE_RESPONSE
from controlplane.watchhub import Heads

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
# What the watch routes' middleware does to a 200 answer, per middleware: the tracing middleware adds the
# request id and Server-Timing and records metrics and the access line; the problem middleware copies the
# rate-limit usage; the rest add headers that depend on the response and `request.is_secure()` only (or,
# like the input boundary, act before the view). A chain made of these alone can be replayed.
REPLAYABLE = frozenset(
    {
        "controlplane.observability.middleware.RequestTracingMiddleware",
        "django.middleware.security.SecurityMiddleware",
        "controlplane.observability.middleware.ApiProblemMiddleware",
        "controlplane.inputs.InputBoundaryMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
    }
)
REPLAY_ADDS_HEADERS_OF = frozenset(
    {
        "controlplane.observability.middleware.RequestTracingMiddleware",
        "controlplane.observability.middleware.ApiProblemMiddleware",
    }
)
PER_REQUEST_HEADERS = frozenset(
    {b"x-request-id", b"server-timing", b"ratelimit-limit", b"ratelimit-remaining", b"ratelimit-reset"}
)
# What uvicorn's `send` would accept in a header (it checks every one): `express` writes a recording's
# headers past `send`, so they are checked once when it is made.
_HEADER_NAME = re.compile(rb"[!#$%&'*+.^_`|~0-9a-z-]+")
_HEADER_VALUE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
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
_replayable = False


def handler() -> WatchHandler:
    global _handler, _replayable
    if _handler is None:
        built = WatchHandler()
        built.load_middleware(is_async=True)
        chain = set(watch_middleware())
        # Replay adds the tracing and problem middleware's per-request headers: they must be in the chain.
        _replayable = chain <= REPLAYABLE and REPLAY_ADDS_HEADERS_OF <= chain
        _handler = built
    return _handler


class Recorded:
    """One answer as it left the middleware chain, without its per-request headers: replayed to every
    watcher that gets the same answer (same name, filters, index, visibility, https)."""

    __slots__ = ("status", "headers", "body", "head")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        # The header lines as one block for `express` (names lower-cased, as uvicorn sends them); None when
        # a header is one the server must see to frame or close the connection (never on these answers).
        lines = [(name.lower(), value) for name, value in headers]
        framing = any(name in (b"connection", b"transfer-encoding") for name, _ in lines)
        valid = all(_HEADER_NAME.fullmatch(name) and _HEADER_VALUE.fullmatch(value) for name, value in lines)
        self.head = None if framing or not valid else b"".join(name + b": " + value + b"\r\n" for name, value in lines)


class Replay(BaseException):  # noqa: N818 - control flow, not an error
    """Raised by a watch view to answer with a recording: it passes every middleware (Django's exception
    handling catches `Exception` only; `DualModeMiddleware.finish` still runs) up to `serve`, which sends it."""

    def __init__(self, recorded: Recorded) -> None:
        self.recorded = recorded


def after_wait(
    request: HttpRequest, heads: Heads, answer_key: Hashable, build: Callable[[], HttpResponse]
) -> HttpResponse | NoReturn:
    """The answer of a watch that waited: the recording of `answer_key` in `heads` when there is one
    (raises `Replay`), else `build()`'s response, recorded by `serve` on its way out.

    `answer_key` must identify the body (name, filters, index, visibility); `heads` is the hub's store
    for the name, emptied when the name's index moves (`WatchHub.heads_for`).
    """
    if not _replayable:
        return build()
    key = (answer_key, request.is_secure())
    recorded = heads.get(key)
    if recorded is not None:
        raise Replay(recorded)
    response = build()
    response.watch_record = (heads, key)  # type: ignore[attr-defined]
    return response


class Express:
    """How one waiting watch can be answered before its task resumes (`WatchHub.express_woken`): with a
    recording, its own headers added, in one write through the server's `send_whole`.

    Made before the wait, so that what the answer needs of the request (https or not, the request id, the
    rate-limit usage: all known by then) is worked out while nothing is waiting on it; after the change
    only `Server-Timing` is left to format.
    """

    __slots__ = ("request", "secure", "own", "send_whole")

    def __init__(self, request: HttpRequest) -> None:
        self.request = request
        self.secure = request.is_secure()
        self.send_whole = request.scope.get("extensions", {}).get(WHOLE_RESPONSE) if _replayable else None  # type: ignore[attr-defined]
        self.own = b""
        if self.send_whole is None:
            return  # replay is off (a middleware it does not know), or the server has no `send_whole`
        # Written as uvicorn's `send` writes header names (lower case).
        self.own = b"".join(name.lower() + b": " + value + b"\r\n" for name, value in _own_headers(request))

    def __call__(self, heads: Heads, answer_key: Hashable) -> bool:
        """Answer with the recording of `answer_key` in `heads`: the bytes `_send_recorded` would send.
        False when there is no recording yet or the server cannot take it (the task then answers).

        The caller (the view's express function) has already re-checked the key, from the cache only,
        and worked out `answer_key` exactly as the task would. The task, when it resumes, finds
        `request.watch_expressed` and only finishes up: metrics, access line, closing.
        """
        if self.send_whole is None:
            return False
        recorded = heads.get((answer_key, self.secure))
        if recorded is None or recorded.head is None:
            return False
        request = self.request
        elapsed = time.perf_counter() - request.tracing_started  # type: ignore[attr-defined]
        timing = b"server-timing: %s\r\n" % server_timing(elapsed).encode()
        if not self.send_whole(recorded.status, recorded.head + self.own + timing, recorded.body):
            return False
        request.watch_expressed = (recorded, elapsed)  # type: ignore[attr-defined]
        return True


def raise_if_expressed(request: HttpRequest) -> None:
    """After a watch's wait: when `express` has answered it already, go straight to `serve`'s finishing up."""
    expressed = getattr(request, "watch_expressed", None)
    if expressed is not None:
        raise Replay(expressed[0])


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
    try:
        response = await handler().get_response_async(request)
    except Replay as replay:
        await _send_recorded(request, replay.recorded, send)
        return
    headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in response.items()]
    for cookie in response.cookies.values():
        headers.append((b"set-cookie", cookie.output(header="").strip().encode("ascii")))
    content = response.content
    if "Content-Length" not in response:
        headers.append((b"content-length", str(len(content)).encode()))
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if request.method == "HEAD" else content})
    record = getattr(response, "watch_record", None)
    if record is not None and response.status_code == 200 and not response.cookies:
        heads, key = record
        shared = [(name, value) for name, value in headers if name.lower() not in PER_REQUEST_HEADERS]
        heads.record(key, Recorded(response.status_code, shared, content))  # answers the others woken with it
    closers = [closer for closer in response._resource_closers if closer != request.close]
    if closers:
        # e.g. the request metrics' flush, which writes: on the hub's threads, never in the loop.
        from controlplane.watchhub import executor

        executor().submit(_close_all, closers)


def _own_headers(request: HttpRequest) -> list[tuple[bytes, bytes]]:
    """This request's own headers on a recording but `Server-Timing`, as the middleware chain adds them."""
    headers = [(b"X-Request-ID", request.request_id.encode())]  # type: ignore[attr-defined]
    usage = getattr(request, "ratelimit_usage", None)
    if usage is not None:
        headers += [
            (b"RateLimit-Limit", str(usage.limit).encode()),
            (b"RateLimit-Remaining", str(usage.remaining).encode()),
            (b"RateLimit-Reset", str(usage.reset).encode()),
        ]
    return headers


async def _send_recorded(request: HttpRequest, recorded: Recorded, send: Send) -> None:
    """Send a recording with this request's own headers (unless `express` has sent it), then finish up."""
    expressed = getattr(request, "watch_expressed", None)
    if expressed is not None:
        elapsed = expressed[1]
    else:
        elapsed = time.perf_counter() - request.tracing_started  # type: ignore[attr-defined]
        headers = [*recorded.headers, *_own_headers(request), (b"Server-Timing", server_timing(elapsed).encode())]
        await send({"type": "http.response.start", "status": recorded.status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if request.method == "HEAD" else recorded.body})
    record_request(request, recorded.status, elapsed)
    request.close()


def _close_all(closers: list[Callable[[], Any]]) -> None:
    for closer in closers:
        closer()
