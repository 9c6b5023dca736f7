"""WSGI entry point: every route but the config watch path is served here (gunicorn in production).

Each request runs under the per-request deadline when gunicorn armed one (`controlplane.deadline`).
"""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Callable, Iterable
from typing import Any

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
django_application = get_wsgi_application()

from controlplane import deadline  # noqa: E402 - after Django is set up
from controlplane.errors import PROBLEM_CONTENT_TYPE, RETRY_AFTER_SECONDS, RequestDeadlineExceeded  # noqa: E402

# What is loaded by now (Django, the apps, URLconfs, templates' modules) lives as long as the process: move it
# out of the cyclic collector's reach, so a full collection does not walk it on a request's time (70-90 ms
# each at the dashboard's sizes, docs/BENCHMARKS.md "Monitoring"; 1.5 ms frozen).
gc.freeze()


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Django's WSGI application under the request deadline."""
    try:
        with deadline.armed():
            return django_application(environ, start_response)
    except RequestDeadlineExceeded:
        # Fired outside Django's own exception handling (between the response and disarming): answer
        # here. start_response with exc_info replaces headers Django may already have set.
        import sys

        body = json.dumps(
            {
                "type": "https://controlplane.dev/problems/service-unavailable",
                "title": "Service Unavailable",
                "status": 503,
                "detail": "The request took longer than the server allows; try again shortly.",
                "request_id": None,
            }
        ).encode()
        start_response(
            "503 Service Unavailable",
            [
                ("Content-Type", PROBLEM_CONTENT_TYPE),
                ("Content-Length", str(len(body))),
                ("Retry-After", str(RETRY_AFTER_SECONDS)),
            ],
            sys.exc_info(),
        )
        return [body]
