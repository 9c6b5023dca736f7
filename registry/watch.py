"""`GET /api/v1/discover/<name>/?index=N&wait=30s`: a blocking query on a service's discovery answer.

Answers at once when the service's discovery index (`ServiceIndex`, in `X-Registry-Index`) is
past `index`, else waits (at most `REGISTRY_WATCH_MAX_SECONDS`) for a change of what discovery would
answer — an instance registered, deregistered or changed, a status transition, maintenance — and then
returns the same body as the plain discovery GET (also on timeout, with the unchanged index, like
Consul). Served by the watch server (`controlplane.watchserver`) like the config watch, with the API's
authentication, `registry:read` and rate limit (`controlplane.watchauth`); the key is checked again
before answering. Changes travel like config changes: Redis pub/sub (`registry:changed:<name>`) in
production, the hub's poller on the column in embedded mode.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from rest_framework import exceptions

from controlplane import watchauth, watchhub, watchserver
from controlplane.access.scopes import Scope
from controlplane.errors import problem_response

logger = logging.getLogger("registry.watch")
CHANNEL_PREFIX = "registry:changed:"
STATUS_CHOICES = ("passing", "warning")


class RegistryTopic(watchhub.Topic):
    """Registry services: index = the service's `ServiceIndex.value`, id = the service id."""

    name = "registry"
    channel_prefix = CHANNEL_PREFIX

    def redis_url(self) -> str | None:
        return getattr(settings, "REGISTRY_WATCH_REDIS_URL", None) or getattr(settings, "REDIS_URL", None) or None

    def poll_seconds(self) -> float:
        # Embedded mode has no pub/sub: status transitions made by the worker reach watchers by this poll.
        default = 5.0 if self.redis_url() else 0.5
        return float(getattr(settings, "REGISTRY_WATCH_POLL_SECONDS", default))

    def fetch(self, names: list[str]) -> dict[str, tuple[int, int]]:
        from registry.selectors import service_indexes

        return service_indexes(names=names)


TOPIC = RegistryTopic()


def max_wait_seconds() -> float:
    """Longest a discovery watch may block (`REGISTRY_WATCH_MAX_SECONDS`, like the config watch's cap)."""
    return float(getattr(settings, "REGISTRY_WATCH_MAX_SECONDS", 300))


def publish(name: str, index: int, service_id: int) -> None:
    """Tell discovery watchers everywhere that service `name` reached `index` (after commit); -1 = deleted."""
    watchhub.publish(TOPIC, name, index, service_id)


@dataclass(frozen=True)
class DiscoveryAnswer:
    """One discovery body at one registry index, rendered once for every watcher that asked the same."""

    index: int
    body: bytes


@dataclass(frozen=True)
class Filters:
    """The discovery filters of a request (`?status=&tag=&capability=`)."""

    statuses: tuple[str, ...]
    tags: tuple[str, ...]
    capability: str | None


def parse_filters(query: Any) -> tuple[Filters, dict[str, list[str]]]:
    """The filters as the plain discovery GET reads them, and field errors."""
    from registry.selectors import DISCOVERABLE_DEFAULT

    wanted = query.get("status") or None
    errors: dict[str, list[str]] = {}
    if wanted is not None and wanted not in STATUS_CHOICES:
        errors["status"] = [f"Choose one of {', '.join(STATUS_CHOICES)}."]
    filters = Filters(
        statuses=(wanted,) if wanted and not errors else tuple(DISCOVERABLE_DEFAULT),
        tags=tuple(sorted({tag for tag in query.getlist("tag") if tag})),
        capability=query.get("capability") or None,
    )
    return filters, errors


def render_instances(instances: list[Any]) -> bytes:
    """The discovery body, exactly as the DRF view renders it."""
    from rest_framework.renderers import JSONRenderer

    from registry.api.serializers import DiscoveredInstanceSerializer

    return JSONRenderer().render(DiscoveredInstanceSerializer(instances, many=True).data)


def load_answer(name: str, filters: Filters) -> DiscoveryAnswer:
    """The current answer for `name` (blocking; on the hub's threads); 404 for an unknown service."""
    from registry.selectors import discover_indexed

    index, instances = discover_indexed(
        service_name=name, statuses=filters.statuses, tags=list(filters.tags), capability=filters.capability
    )
    return DiscoveryAnswer(index=index, body=render_instances(instances))


def _authorize(request: HttpRequest, name: str) -> tuple[int, int]:
    """The API's key checks and the service: `(service id, registry index)`; 404 for an unknown service."""
    from registry.selectors import service_indexes

    watchauth.authorize(request, Scope.REGISTRY_READ)
    row = service_indexes(names=[name]).get(name)
    if row is None:
        raise exceptions.NotFound(f"No service {name!r}.")
    return row


async def discover_watch_response(request: HttpRequest, name: str) -> HttpResponse:
    """The discovery blocking query for `request` (the watch server's async view)."""
    if request.method not in ("GET", "HEAD"):
        return problem_response(405, f"Method {request.method} is not allowed here.", headers={"Allow": "GET, HEAD"})
    index, wait, errors = watchhub.parse_blocking_params(request.GET, max_wait=max_wait_seconds())
    filters, filter_errors = parse_filters(request.GET)
    errors.update(filter_errors)
    if errors:
        return problem_response(400, "The request is invalid; see `errors`.", code="validation-error", errors=errors)
    hub = watchhub.WatchHub.for_running_loop(TOPIC)
    try:
        service_id, current = await hub.run_db(_authorize, request, name)
    except exceptions.APIException as exc:
        if exc.status_code >= 500:
            logger.warning("Discovery watch on %s refused: %s", name, exc.detail, exc_info=exc.__cause__ or exc)
        return watchauth.problem(exc)
    hub.wake(name, current, service_id)
    waits = current <= index
    if waits:
        since = hub.loop.time()
        hub.expect(name, partial(load_answer, name, filters), filters)
        changed = await hub.wait(
            name, index, wait, partial(_express, watchserver.Express(request), hub, name, current, filters, since)
        )
        watchserver.raise_if_expressed(request)
        try:
            await watchauth.key_after_wait(request, hub, since if changed else None, Scope.REGISTRY_READ)
        except exceptions.APIException as exc:
            return watchauth.problem(exc)
    try:
        answer = await hub.answer(name, hub.known_index(name, current), partial(load_answer, name, filters), filters)
    except Http404:
        return problem_response(404, f"No service {name!r}.")
    if waits:
        # Every watcher of these filters woken by this change gets this same answer: replayed after the first.
        return watchserver.after_wait(
            request, hub.heads_for(name), (filters, answer.index), partial(answer_response, answer.body, answer.index)
        )
    return answer_response(answer.body, answer.index)


def _express(
    answer: watchserver.Express, hub: watchhub.WatchHub, name: str, current: int, filters: Filters, since: float
) -> bool:
    """Answer this woken watcher before its task resumes (`WatchHub.express_woken`), exactly as the rest
    of `discover_watch_response` would: the key re-checked from the cache (else False), the same answer
    for its filters, its recording. A refusal raises; the task answers it."""
    if watchauth.recheck_cached(answer.request, hub, since, Scope.REGISTRY_READ) is None:
        return False
    loaded = hub.cached_answer(name, hub.known_index(name, current), filters)
    if loaded is None:
        return False
    return answer(hub.heads_for(name), (filters, loaded.index))


def answer_response(body: bytes, index: int) -> HttpResponse:
    """A discovery answer with its index (also used by the plain GET)."""
    response = HttpResponse(body, content_type="application/json")
    response["X-Registry-Index"] = str(index)
    response["Cache-Control"] = "no-store"
    return response
