"""Django-level 404/500 handlers: problem+json under /api/, Django's plain pages elsewhere."""

from __future__ import annotations

import sys

from django.http import HttpRequest, HttpResponse
from django.views import defaults

from controlplane.errors import outage_response, problem_response


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/api/"):
        return problem_response(404, "No such resource.")
    return defaults.page_not_found(request, exception)  # type: ignore[arg-type]


def server_error(request: HttpRequest) -> HttpResponse:
    # Django calls this inside its `except` block, so the exception (raised by a middleware, outside
    # any view) is still at hand: a database outage is a 503 to retry, not a bug.
    exc = sys.exc_info()[1]
    outage = outage_response(exc) if exc is not None else None
    if outage is not None:
        return outage
    if request.path.startswith("/api/"):
        return problem_response(500, "An internal error occurred; quote the request id when reporting it.")
    return defaults.server_error(request)
