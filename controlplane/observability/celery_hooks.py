"""Carries the request id from the web request into the Celery tasks it queues."""

from __future__ import annotations

from typing import Any

from celery.signals import before_task_publish, task_postrun, task_prerun

from controlplane.observability.context import current_request_id, reset_request_id, set_request_id

_tokens: dict[str, Any] = {}


@before_task_publish.connect
def _add_request_id_header(headers: dict | None = None, **_: Any) -> None:
    request_id = current_request_id()
    if headers is not None and request_id and "request_id" not in headers:
        headers["request_id"] = request_id


@task_prerun.connect
def _bind_request_id(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    request_id = getattr(task.request, "request_id", None) if task is not None else None
    if request_id is None and task is not None:
        request_id = (getattr(task.request, "headers", None) or {}).get("request_id")
    if task_id:
        _tokens[task_id] = set_request_id(request_id or f"task-{task_id}")


@task_postrun.connect
def _unbind_request_id(task_id: str | None = None, **_: Any) -> None:
    token = _tokens.pop(task_id, None) if task_id else None
    if token is not None:
        try:
            reset_request_id(token)
        except ValueError:  # a token from another context (eager mode): just clear
            set_request_id(None)
