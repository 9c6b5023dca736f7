"""Typed exceptions for the control plane's problem+json answers (RFC 9457) and for transport failures."""

from __future__ import annotations

import json
from typing import Any

import httpx


class ControlPlaneError(Exception):
    """Any error answered by the control plane (a problem+json body) or met on the way to it.

    `status` is the HTTP status (0 when no answer arrived), `title`/`detail`/`type` come from the problem,
    `request_id` names the request in the server's logs, `errors` maps field paths to messages.
    """

    status: int = 0

    def __init__(
        self,
        detail: str = "",
        *,
        status: int | None = None,
        title: str = "",
        type: str = "about:blank",  # noqa: A002 - the RFC 9457 member name
        request_id: str | None = None,
        errors: dict[str, Any] | None = None,
        response: httpx.Response | None = None,
    ) -> None:
        if status is not None:
            self.status = status
        self.title = title
        self.detail = detail
        self.type = type
        self.request_id = request_id
        self.errors: dict[str, Any] = errors or {}
        self.response = response
        super().__init__(self._message())

    def _message(self) -> str:
        text = f"{self.status} {self.title}".strip() if self.status else self.title
        if self.detail:
            text = f"{text}: {self.detail}" if text else self.detail
        if self.errors:
            text += " " + json.dumps(self.errors, ensure_ascii=False, sort_keys=True)
        if self.request_id:
            text += f" (request {self.request_id})"
        return text


class ValidationError(ControlPlaneError):
    """400: the request is invalid; `errors` says which fields and why."""

    status = 400


class Unauthorized(ControlPlaneError):
    """401: the API key is missing, unknown, expired or revoked."""

    status = 401


class Forbidden(ControlPlaneError):
    """403: the key is valid but lacks the scope (or, for secrets, `config:secrets`)."""

    status = 403


class NotFound(ControlPlaneError):
    """404: no such resource (or a config namespace outside the key's list)."""

    status = 404


class Conflict(ControlPlaneError):
    """409: the resource's state refuses the request (a disabled pipeline, a check being probed)."""

    status = 409


class PreconditionFailed(ControlPlaneError):
    """412: a compare-and-swap lost: the revision given as `expected_revision` is stale."""

    status = 412


class PayloadTooLarge(ControlPlaneError):
    """413: the body is over the server's limit."""

    status = 413


class Unprocessable(ControlPlaneError):
    """422: the request was understood but refused (a pipeline run over its budget)."""

    status = 422


class RateLimited(ControlPlaneError):
    """429: the key's rate is exhausted; `retry_after` is the server's advice in seconds (or None)."""

    status = 429

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(*args, **kwargs)


class Unavailable(ControlPlaneError):
    """503 (or any 5xx, or no answer at all): the control plane cannot serve the request now.

    `retry_after` is the server's advice in seconds when it gave one. A connection failure is an
    `Unavailable` with `status == 0`.
    """

    status = 503

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(*args, **kwargs)


class ServerError(Unavailable):
    """500 and other 5xx: a bug or a failing server; quote `request_id`."""

    status = 500


class ConnectionFailed(Unavailable):
    """No answer: the connection was refused, reset or timed out."""

    status = 0


_BY_STATUS: dict[int, type[ControlPlaneError]] = {
    400: ValidationError,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    412: PreconditionFailed,
    413: PayloadTooLarge,
    422: Unprocessable,
    429: RateLimited,
    503: Unavailable,
}


def retry_after_seconds(response: httpx.Response) -> float | None:
    """`Retry-After` in seconds (the control plane sends delta-seconds); None when absent or unreadable."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: not what this server sends; fall back to our own backoff


def error_from_response(response: httpx.Response) -> ControlPlaneError:
    """The typed exception for a non-2xx answer, filled from its problem+json body when it has one."""
    problem: dict[str, Any] = {}
    try:
        body = response.json()
        if isinstance(body, dict):
            problem = body
    except ValueError:
        pass  # not JSON (a proxy's HTML page): keep the status and the start of the text
    status = response.status_code
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else ControlPlaneError)
    detail = problem.get("detail")
    if not isinstance(detail, str):
        detail = "" if problem else response.text[:200]
    kwargs: dict[str, Any] = {
        "status": status,
        "title": str(problem.get("title") or response.reason_phrase or ""),
        "type": str(problem.get("type") or "about:blank"),
        "request_id": problem.get("request_id") or response.headers.get("X-Request-ID"),
        "errors": problem.get("errors") if isinstance(problem.get("errors"), dict) else None,
        "response": response,
    }
    if issubclass(cls, RateLimited | Unavailable):
        kwargs["retry_after"] = retry_after_seconds(response)
    return cls(detail, **kwargs)
