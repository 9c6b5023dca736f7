"""Middleware: request id + timing + access log + metrics, and problem+json for Django-level API errors."""

from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse

from controlplane.dualmiddleware import DualModeMiddleware
from controlplane.errors import PROBLEM_CONTENT_TYPE, outage_response, problem_response
from controlplane.observability import requestmetrics
from controlplane.observability.context import (
    reset_request_id,
    sane_request_id,
    set_key_prefix,
    set_request_id,
)
from controlplane.observability.metrics import HTTP_LATENCY, HTTP_REQUESTS

access_log = logging.getLogger("controlplane.access")
error_log = logging.getLogger("controlplane.errors")


def _route_template(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "<unmatched>"
    return "/" + (match.route or "").lstrip("^").rstrip("$")


def _access_level(path: str) -> int:
    """INFO for every request but liveness probes and static files, which come by the hundred: DEBUG.

    `LOG_LEVEL=debug` shows them again; their metrics are counted either way.
    """
    if path == "/healthz" or path.startswith(settings.STATIC_URL):
        return logging.DEBUG
    return logging.INFO


def server_timing(elapsed: float) -> str:
    """The `Server-Timing` value for a request that took `elapsed` seconds in the application."""
    return f"app;dur={elapsed * 1000:.2f}"


_route_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def _children(method: str, route: str, status: int) -> tuple[Any, Any]:
    """The Prometheus children of one (method, route, status), looked up once: `labels()` validates and
    locks on every call, and the watch server records thousands of identical requests in one burst."""
    children = _route_children.get((method, route, status))
    if children is None:
        if len(_route_children) > 1024:  # methods and statuses are bounded, routes are templates: a guard only
            _route_children.clear()
        children = (HTTP_REQUESTS.labels(method, route, str(status)), HTTP_LATENCY.labels(method, route))
        _route_children[(method, route, status)] = children
    return children


def record_request(request: HttpRequest, status: int, elapsed: float) -> None:
    """Metrics and the access line of one answered request (the tracing middleware's, also for answers the
    watch server sends outside the middleware chain, `controlplane.watchserver`)."""
    route = _route_template(request)
    method = request.method or ""
    requests, latency = _children(method, route, status)
    requests.inc()
    latency.observe(elapsed)
    if requestmetrics.enabled():  # in memory; the process's own thread flushes it
        requestmetrics.request_metrics.record(method, route, status, elapsed)
    level = _access_level(request.path)
    if access_log.isEnabledFor(level):
        access_log.log(
            level,
            "%s %s %s",
            request.method,
            route,
            status,
            extra={
                "event": "access",
                "method": request.method,
                "path": request.path,
                "route": route,
                "status": status,
                "duration_ms": round(elapsed * 1000, 2),
                "key_prefix": getattr(request, "api_key_prefix", None),
                # Also outside the middleware chain, where the context variable is already reset.
                "request_id": getattr(request, "request_id", None),
            },
        )


class RequestTracingMiddleware(DualModeMiddleware):
    """Gives each request an id (sane client value or generated), times it and logs one access line.

    The id is echoed as `X-Request-ID`, the app time as `Server-Timing`, and both the id and the API-key
    prefix reach every log line of the request through context variables. Sync and async
    (`DualModeMiddleware`): the watch server runs this same class in its event loop.
    """

    def before(self, request: HttpRequest) -> tuple[None, tuple[float, str, Any]]:
        started = time.perf_counter()
        request_id = sane_request_id(request.META.get("HTTP_X_REQUEST_ID"))
        request.request_id = request_id  # type: ignore[attr-defined]
        request.tracing_started = started  # type: ignore[attr-defined]  # for answers sent outside the chain
        token = set_request_id(request_id)
        set_key_prefix(None)
        return None, (started, request_id, token)

    def after(self, request: HttpRequest, response: HttpResponse, state: tuple[float, str, Any]) -> HttpResponse:
        started, request_id, _ = state
        elapsed = time.perf_counter() - started
        response["X-Request-ID"] = request_id
        response["Server-Timing"] = server_timing(elapsed)
        record_request(request, response.status_code, elapsed)
        return response

    def finish(self, request: HttpRequest, state: tuple[float, str, Any]) -> None:
        reset_request_id(state[2])
        set_key_prefix(None)


class ApiProblemMiddleware(DualModeMiddleware):
    """Under /api/, turns errors raised outside DRF (404, 405, 413, 500) into problem+json.

    It also refuses bodies over `DATA_UPLOAD_MAX_MEMORY_SIZE` with 413 before anything reads them, and
    copies rate-limit usage (set by the throttle) into `RateLimit-*` headers. Sync and async, like the
    tracing middleware.
    """

    def before(self, request: HttpRequest) -> tuple[HttpResponse | None, None]:
        if request.path.startswith("/api/"):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            if limit is not None and length > limit:
                return problem_response(413, f"The request body exceeds {limit} bytes.", code="payload-too-large"), None
        return None, None

    def after(self, request: HttpRequest, response: HttpResponse, state: None) -> HttpResponse:
        is_api = request.path.startswith("/api/")
        usage = getattr(request, "ratelimit_usage", None)
        if usage is not None:
            response["RateLimit-Limit"] = str(usage.limit)
            response["RateLimit-Remaining"] = str(usage.remaining)
            response["RateLimit-Reset"] = str(usage.reset)
            if response.status_code == 429:
                response["Retry-After"] = str(max(usage.reset, 1))
        if is_api and response.status_code >= 400 and response.get("Content-Type", "") != PROBLEM_CONTENT_TYPE:
            detail = {
                404: "No such resource.",
                405: f"Method {request.method} is not allowed here.",
                413: "The request body is too large.",
            }.get(response.status_code, "The request failed.")
            problem = problem_response(response.status_code, detail)
            for header in ("Allow", "Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"):
                if header in response:
                    problem[header] = response[header]
            return problem
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith("/api/"):
            return None
        if isinstance(exception, RequestDataTooBig):
            return problem_response(413, "The request body is too large.", code="payload-too-large")
        outage = outage_response(exception)
        if outage is not None:
            return outage
        error_log.exception("Unhandled error on %s", request.path, exc_info=exception)
        return problem_response(500, "An internal error occurred; quote the request id when reporting it.")
