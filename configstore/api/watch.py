"""`GET /api/v1/config/<ns>/watch/?index=N&wait=30s`: a blocking query on the namespace revision.

Answers at once when the revision is past `index`, else waits (at most `CONFIG_WATCH_MAX_SECONDS`) for a
change, then returns the effective config with the revision in `X-Config-Index` (also on timeout, with
the unchanged revision, like Consul). Authentication, scope, namespace limits and rate limiting are the
API's own (`controlplane.watchauth`), run on the watch hub's threads; the wait itself is a future in the
event loop; the key is checked again before answering.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from rest_framework import exceptions

from configstore import conf
from configstore.notify import WatchHub
from controlplane import watchauth, watchhub, watchserver
from controlplane.access.scopes import Scope, grants
from controlplane.errors import problem_response

logger = logging.getLogger("configstore.watch")


def parse_watch_params(query) -> tuple[int, float, dict[str, list[str]]]:  # type: ignore[no-untyped-def]
    """`(index, wait seconds, errors)` from the query string; wait is capped at the configured maximum."""
    return watchhub.parse_blocking_params(query, max_wait=conf.watch_max_seconds())


def _authorize(request: HttpRequest, namespace: str) -> tuple[int, int, bool]:
    """The API's key checks (`watchauth.authorize`) and the namespace: `(id, revision, reveal secrets)`."""
    from configstore.models import Namespace

    key = watchauth.authorize(request, Scope.CONFIG_READ)
    row = (
        Namespace.objects.filter(name=namespace).values_list("id", "revision").first()
        if key.allows_namespace(namespace)
        else None
    )
    if row is None:
        raise exceptions.NotFound(f"No namespace {namespace!r}.")
    return row[0], row[1], grants(key.scopes, Scope.CONFIG_SECRETS)


def _verdict(key: Any, namespace: str) -> bool:
    """After the wait: may the (re-checked) key still read `namespace`? `reveal secrets`."""
    if not key.allows_namespace(namespace):
        raise exceptions.NotFound(f"No namespace {namespace!r}.")
    return grants(key.scopes, Scope.CONFIG_SECRETS)


_problem = watchauth.problem


async def watch_response(request: HttpRequest, namespace: str) -> HttpResponse:
    """The config watch answer for `request` (the watch server's async view; problem+json on refusal)."""
    if request.method not in ("GET", "HEAD"):
        return problem_response(405, f"Method {request.method} is not allowed here.", headers={"Allow": "GET, HEAD"})
    index, wait, errors = parse_watch_params(request.GET)
    if errors:
        return problem_response(400, "The request is invalid; see `errors`.", code="validation-error", errors=errors)
    hub = WatchHub.for_running_loop()
    try:
        namespace_id, revision, reveal = await hub.run_db(_authorize, request, namespace)
    except exceptions.APIException as exc:
        if exc.status_code >= 500:
            logger.warning("Watch on %s refused: %s", namespace, exc.detail, exc_info=exc.__cause__ or exc)
        return _problem(exc)
    hub.wake(namespace, revision, namespace_id)
    waits = revision <= index
    if waits:
        since = hub.loop.time()
        hub.expect(namespace, partial(config_snapshot_loader, namespace))
        express = partial(_express, watchserver.Express(request), hub, namespace, revision, since)
        changed = await hub.wait(namespace, index, wait, express)
        watchserver.raise_if_expressed(request)
        try:
            key = await watchauth.key_after_wait(request, hub, since if changed else None, Scope.CONFIG_READ)
            reveal = _verdict(key, namespace)
        except exceptions.APIException as exc:
            return _problem(exc)
    try:
        snapshot = await hub.answer(
            namespace, hub.known_index(namespace, revision), partial(config_snapshot_loader, namespace)
        )
    except Http404:
        return problem_response(404, f"No namespace {namespace!r}.")
    if waits:
        # Every watcher woken by this change gets this same answer: built once, replayed to the others.
        answer_key = (snapshot.revision, reveal)
        return watchserver.after_wait(request, hub.heads_for(namespace), answer_key, partial(_answer, snapshot, reveal))
    return _answer(snapshot, reveal)


def _express(answer: watchserver.Express, hub: WatchHub, namespace: str, revision: int, since: float) -> bool:
    """Answer this woken watcher before its task resumes (`WatchHub.express_woken`), exactly as the rest
    of `watch_response` would: the key re-checked from the cache (else False: the task re-checks it), the
    same snapshot and visibility, the recording of that answer. A refusal raises; the task answers it."""
    key = watchauth.recheck_cached(answer.request, hub, since, Scope.CONFIG_READ)
    if key is None:
        return False
    reveal = _verdict(key, namespace)
    snapshot = hub.cached_answer(namespace, hub.known_index(namespace, revision))
    if snapshot is None:
        return False
    return answer(hub.heads_for(namespace), (snapshot.revision, reveal))


def config_snapshot_loader(namespace: str) -> Any:
    """The namespace's current snapshot (blocking; run on the hub's threads)."""
    from configstore.selectors import config_snapshot

    return config_snapshot(namespace)


def _answer(snapshot, reveal: bool) -> HttpResponse:  # type: ignore[no-untyped-def]
    response = HttpResponse(snapshot.json_body(reveal=reveal), content_type="application/json")
    response["X-Config-Index"] = str(snapshot.revision)
    response["ETag"] = f'"{snapshot.revision}"'
    response["Cache-Control"] = "no-store"
    return response


def config_watch(request: HttpRequest, namespace: str) -> HttpResponse:
    """The watch path as reached through the URLconf (WSGI): never blocks a sync worker.

    The ASGI entry (`controlplane.asgi`, through `controlplane.watchserver`) answers this path with
    `watch_response` and blocks there; a request that reaches a WSGI worker gets an immediate answer when the revision is
    past `index` (or with `wait=0s`), and otherwise a 503 saying where blocking watches are served.
    """
    from configstore.selectors import config_snapshot

    if request.method not in ("GET", "HEAD"):
        return problem_response(405, f"Method {request.method} is not allowed here.", headers={"Allow": "GET, HEAD"})
    index, wait, errors = parse_watch_params(request.GET)
    if errors:
        return problem_response(400, "The request is invalid; see `errors`.", code="validation-error", errors=errors)
    try:
        _, revision, reveal = _authorize(request, namespace)
    except exceptions.APIException as exc:
        return _problem(exc)
    if revision <= index and wait > 0:
        return problem_response(
            503,
            "Blocking watches are served by the ASGI watch server; route /api/v1/config/<ns>/watch/ to it "
            "(see docs/operations.md) or pass wait=0s.",
            headers={"Retry-After": "1"},
        )
    try:
        return _answer(config_snapshot(namespace), reveal)
    except Http404:
        return problem_response(404, f"No namespace {namespace!r}.")
