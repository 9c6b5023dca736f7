"""Middleware written once that runs in the caller's mode, sync (gunicorn) or async (uvicorn), without a thread.

Django runs a sync-only middleware under ASGI by hopping to a thread for every request, and a middleware
written twice (a `__call__` and an `__acall__`) drifts. A `DualModeMiddleware` says what it does before
and after the inner handler in three plain methods; the base class calls them around a sync or an
awaited `get_response`, whichever Django (or the watch server, `controlplane.watchserver`) hands it.
They must not block: no database or network I/O (that belongs in views).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse


class DualModeMiddleware:
    """Base for middleware defined by `before`, `after` and `finish`; sync- and async-capable."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def before(self, request: HttpRequest) -> tuple[HttpResponse | None, Any]:
        """`(early response or None, state)`: an early response skips the inner handler."""
        return None, None

    def after(self, request: HttpRequest, response: HttpResponse, state: Any) -> HttpResponse:
        """The response on its way out (also an early one)."""
        return response

    def finish(self, request: HttpRequest, state: Any) -> None:
        """Always runs last, also when something raised (reset context variables here)."""

    def __call__(self, request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse]:
        if self.async_mode:
            return self._acall(request)
        early, state = self.before(request)
        try:
            response = early if early is not None else self.get_response(request)
            return self.after(request, response, state)
        finally:
            self.finish(request, state)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        early, state = self.before(request)
        try:
            response = early if early is not None else await self.get_response(request)
            return self.after(request, response, state)
        finally:
            self.finish(request, state)
