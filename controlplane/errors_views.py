"""Django-level 404/500 handlers: problem+json under /api/, Django's plain pages elsewhere."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views import defaults

from controlplane.errors import problem_response


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/api/"):
        return problem_response(404, "No such resource.")
    return defaults.page_not_found(request, exception)  # type: ignore[arg-type]


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        return problem_response(500, "An internal error occurred; quote the request id when reporting it.")
    return defaults.server_error(request)
