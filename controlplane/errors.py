"""RFC 9457 problem details for every error under /api/.

DRF exceptions go through `problem_exception_handler`; errors raised outside DRF (Django's 404, 405,
413, 500 on an /api/ path) are rewritten by `ApiProblemMiddleware` with `problem_response`. Nothing here
ever includes a traceback or a setting value.
"""

from __future__ import annotations

import json
import logging
import os
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from rest_framework import exceptions

from controlplane.observability.context import current_request_id

if TYPE_CHECKING:
    # Imported where used: rest_framework.response pulls in DRF's serializer machinery (and Pygments),
    # which Celery workers and beat, importing this module through the services, never need.
    from rest_framework.response import Response

logger = logging.getLogger("controlplane.errors")
PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://controlplane.dev/problems/"


class Conflict(exceptions.APIException):
    """409: the request is valid but the resource is in a state that refuses it."""

    status_code = 409
    default_detail = "The resource is in a state that does not allow this request."
    default_code = "conflict"


class PreconditionFailed(exceptions.APIException):
    """412: an `If-Match` precondition did not hold (compare-and-swap lost)."""

    status_code = 412
    default_detail = "The resource changed since the revision given in If-Match."
    default_code = "precondition_failed"


class PayloadTooLarge(exceptions.APIException):
    """413: the request body is larger than the configured limit."""

    status_code = 413
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


class ServiceUnavailable(exceptions.APIException):
    """503: a required backing service (cache, database) is not answering."""

    status_code = 503
    default_detail = "A backing service is unavailable; try again shortly."
    default_code = "service_unavailable"


# Seconds a client should wait before retrying a 503 (backing service down, request deadline hit).
RETRY_AFTER_SECONDS = 5


class RequestDeadlineExceeded(Exception):  # noqa: N818 - named for what happened, like TimeoutError
    """Raised inside a request that ran past its wall-clock deadline (see `controlplane.deadline`)."""


def outage_detail(exc: BaseException) -> str | None:
    """The 503 detail when `exc` means a backing service (the database) or the request deadline failed.

    Only connection-level database errors count (`OperationalError`, `InterfaceError`: refused,
    dropped, timed out, locked); integrity and programming errors stay 500s, as bugs.
    """
    from django.db import InterfaceError, OperationalError

    if isinstance(exc, RequestDeadlineExceeded):
        return "The request took longer than the server allows; try again shortly."
    if isinstance(exc, (OperationalError, InterfaceError)):
        return "The database is unavailable; try again shortly."
    return None


def outage_response(exc: BaseException) -> JsonResponse | None:
    """A 503 problem response with `Retry-After` for `outage_detail` exceptions, else None."""
    detail = outage_detail(exc)
    if detail is None:
        return None
    logger.warning("Answered 503: %s (%s)", detail, type(exc).__name__)
    return problem_response(503, detail, code="service-unavailable", headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def problem_body(status: int, detail: str, *, code: str | None = None, errors: Any = None, **extra: Any) -> dict:
    """Build a problem+json document for `status`."""
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    slug = code or title.lower().replace(" ", "-").replace("'", "")
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + slug.replace("_", "-"),
        "title": title,
        "status": status,
        "detail": detail,
        "request_id": current_request_id(),
    }
    if errors:
        body["errors"] = errors
    body.update(extra)
    return body


def closing_problem(status: int, detail: str, *, code: str | None = None) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Raw headers and body of a problem document answered outside Django (a server protocol refusing a
    request, an ASGI wrapper), with a fresh request id; the connection is closed after it."""
    request_id = os.urandom(16).hex()
    body = json.dumps({**problem_body(status, detail, code=code), "request_id": request_id}).encode()
    headers = [
        (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()),
        (b"connection", b"close"),
    ]
    return headers, body


def problem_response(status: int, detail: str, **kwargs: Any) -> JsonResponse:
    """A Django response carrying a problem document (for code outside DRF)."""
    headers = kwargs.pop("headers", None)
    response = JsonResponse(problem_body(status, detail, **kwargs), status=status, content_type=PROBLEM_CONTENT_TYPE)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _field_errors(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """Flatten DRF's nested error detail into `{"field.sub": ["message", ...]}`."""
    flat: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            for sub_key, messages in _field_errors(value, name).items():
                flat.setdefault(sub_key, []).extend(messages)
    elif isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            flat[prefix or "non_field_errors"] = [str(item) for item in detail]
        else:
            for index, value in enumerate(detail):
                name = f"{prefix}.{index}" if prefix else str(index)
                for sub_key, messages in _field_errors(value, name).items():
                    flat.setdefault(sub_key, []).extend(messages)
    else:
        flat[prefix or "non_field_errors"] = [str(detail)]
    return flat


def problem_exception_handler(exc: Exception, context: dict) -> Response:
    """DRF exception handler: every exception becomes problem+json, unknown ones a bare 500."""
    from rest_framework.response import Response
    from rest_framework.views import exception_handler  # here: rest_framework.views imports our permissions

    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(detail=exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    elif isinstance(exc, (TooManyFieldsSent, TooManyFilesSent)):
        exc = exceptions.ValidationError({"query": [str(exc)]})
    else:
        detail = outage_detail(exc)
        if detail is not None:
            logger.warning("Answered 503: %s (%s)", detail, type(exc).__name__)
            exc = ServiceUnavailable(detail)

    response = exception_handler(exc, context)
    if response is None:
        logger.exception("Unhandled error in API view", exc_info=exc)
        return Response(
            problem_body(500, "An internal error occurred; quote the request id when reporting it."),
            status=500,
            content_type=PROBLEM_CONTENT_TYPE,
        )

    errors = None
    if isinstance(exc, exceptions.ValidationError):
        errors = _field_errors(exc.detail)
        detail = "The request is invalid; see `errors`."
        code = "validation-error"
    else:
        raw = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        detail = str(raw) if not isinstance(raw, (dict, list)) else "The request failed."
        code = getattr(exc, "default_code", None)
        if isinstance(raw, dict) and not isinstance(exc, exceptions.ValidationError):
            errors = _field_errors(raw)
    body = problem_body(response.status_code, detail, code=code, errors=errors)
    extra = getattr(exc, "problem_extra", None)
    if extra:
        body.update(extra)
    response.data = body
    response.content_type = PROBLEM_CONTENT_TYPE
    if response.status_code == 503 and "Retry-After" not in response:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
