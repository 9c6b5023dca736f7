"""The current request id and API-key prefix, carried in context variables.

Context variables follow the request through sync and async code alike; Celery tasks get the id of the
request that queued them through a message header (see `celery_hooks`).
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar

REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
_key_prefix: ContextVar[str | None] = ContextVar("key_prefix", default=None)


def sane_request_id(candidate: str | None) -> str:
    """The client's id when it is <= 128 chars of [A-Za-z0-9._-], else a fresh one."""
    if candidate and REQUEST_ID_RE.match(candidate):
        return candidate
    return os.urandom(16).hex()  # 128 random bits, like uuid4().hex, without building a UUID


def current_request_id() -> str | None:
    """The id of the request (or task) being handled, if any."""
    return _request_id.get()


def set_request_id(value: str | None):  # type: ignore[no-untyped-def]
    """Set the current id; returns a token for `reset_request_id`."""
    return _request_id.set(value)


def reset_request_id(token) -> None:  # type: ignore[no-untyped-def]
    _request_id.reset(token)


def current_key_prefix() -> str | None:
    """The prefix of the API key that authenticated the current request, if any."""
    return _key_prefix.get()


def set_key_prefix(value: str | None) -> None:
    _key_prefix.set(value)
