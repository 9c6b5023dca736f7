"""`GET /api/v1/config/<ns>/watch/?index=N&wait=30s`: a blocking query on the namespace revision.

Answers at once when the revision is past `index`, else waits (at most `CONFIG_WATCH_MAX_SECONDS`) for a
change, then returns the effective config with the revision in `X-Config-Index` (also on timeout, with
the unchanged revision, like Consul). Authentication, scope, namespace limits and rate limiting are the
API's own, run on the watch hub's threads; the wait itself is a future in the event loop.
"""

from __future__ import annotations

import logging
import re
from functools import partial

from django.http import Http404, HttpRequest, HttpResponse
from rest_framework import exceptions

from configstore import conf
from configstore.notify import WatchHub
from controlplane.access import keycache
from controlplane.access.authentication import authenticate_key
from controlplane.access.ratelimit import ratelimit_hit
from controlplane.access.scopes import Scope, grants
from controlplane.errors import problem_response

logger = logging.getLogger("configstore.watch")
_WAIT_RE = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)?$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}


def parse_watch_params(query) -> tuple[int, float, dict[str, list[str]]]:  # type: ignore[no-untyped-def]
    """`(index, wait seconds, errors)` from the query string; wait is capped at the configured maximum."""
    errors: dict[str, list[str]] = {}
    index, wait = 0, conf.watch_max_seconds()
    raw_index = query.get("index", "0")
    if not raw_index.isdigit():
        errors["index"] = ["A non-negative integer revision."]
    else:
        index = int(raw_index)
    raw_wait = query.get("wait")
    if raw_wait is not None:
        match = _WAIT_RE.match(raw_wait.strip())
        if match is None:
            errors["wait"] = ["A duration such as 30s, 5m or 500ms."]
        else:
            wait = min(float(match.group(1)) * _UNITS[match.group(2)], conf.watch_max_seconds())
    return index, wait, errors


def _authorize(request: HttpRequest, namespace: str, *, own_thread: bool = False) -> tuple[int, int, bool]:
    """Authenticate, check scope, count the rate limit, check the namespace: `(id, revision, reveal secrets)`.

    `own_thread`: running on the watch hub's threads, outside Django's request cycle, so stale
    connections are recycled here (inside a request Django does that itself).
    """
    from django.db import close_old_connections

    from configstore.models import Namespace

    if own_thread:
        close_old_connections()
    key = authenticate_key(request)
    if not grants(key.scopes, Scope.CONFIG_READ):
        raise exceptions.PermissionDenied(f"The API key lacks the scope {Scope.CONFIG_READ}.")
    usage = ratelimit_hit(request, key_prefix=key.prefix, rate=key.effective_rate)
    request.ratelimit_usage = usage  # type: ignore[attr-defined]
    if keycache.enabled() and not keycache.confirm(key, usage.generation):
        key = authenticate_key(request)  # a key changed somewhere since this process cached this one
        if not grants(key.scopes, Scope.CONFIG_READ):
            raise exceptions.PermissionDenied(f"The API key lacks the scope {Scope.CONFIG_READ}.")
    if usage.limited:
        raise exceptions.Throttled(wait=max(usage.reset, 1))
    row = (
        Namespace.objects.filter(name=namespace).values_list("id", "revision").first()
        if key.allows_namespace(namespace)
        else None
    )
    if row is None:
        raise exceptions.NotFound(f"No namespace {namespace!r}.")
    return row[0], row[1], grants(key.scopes, Scope.CONFIG_SECRETS)


def _recheck(request: HttpRequest, namespace: str, *, own_thread: bool = False) -> bool:
    """After the wait, right before answering: is the key still good for this namespace? `reveal secrets`.

    A watch can wait for minutes; a key revoked, deleted, expired or narrowed meanwhile (in any process:
    the shared generation moved) must get a refusal, not the change it waited for. Raises like
    `_authorize`; the rate limit is not counted again.
    """
    from django.db import close_old_connections

    if own_thread:
        close_old_connections()
    key = authenticate_key(request)  # revocation and expiry of this process's copy, checked every time
    if keycache.enabled():
        generation = keycache.trusted_generation()
        if generation is None:
            generation = keycache.current_generation()
        if not keycache.confirm(key, generation):
            key = authenticate_key(request)  # changed somewhere since it was cached: from the database
    if not grants(key.scopes, Scope.CONFIG_READ):
        raise exceptions.PermissionDenied(f"The API key lacks the scope {Scope.CONFIG_READ}.")
    if not key.allows_namespace(namespace):
        raise exceptions.NotFound(f"No namespace {namespace!r}.")
    return grants(key.scopes, Scope.CONFIG_SECRETS)


def _problem(exc: exceptions.APIException) -> HttpResponse:
    headers = {}
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        headers["WWW-Authenticate"] = 'Api-Key realm="controlplane"'
    if isinstance(exc, exceptions.Throttled) and exc.wait:
        headers["Retry-After"] = str(int(exc.wait))
    return problem_response(exc.status_code, str(exc.detail), code=exc.default_code, headers=headers)


async def watch_response(request: HttpRequest, namespace: str) -> HttpResponse:
    """The watch answer for `request` (used by the URLconf view and by the ASGI fast path)."""
    if request.method not in ("GET", "HEAD"):
        return problem_response(405, f"Method {request.method} is not allowed here.", headers={"Allow": "GET, HEAD"})
    index, wait, errors = parse_watch_params(request.GET)
    if errors:
        return problem_response(400, "The request is invalid; see `errors`.", code="validation-error", errors=errors)
    hub = WatchHub.for_running_loop()
    try:
        namespace_id, revision, reveal = await hub.run_db(partial(_authorize, own_thread=True), request, namespace)
    except exceptions.APIException as exc:
        if exc.status_code >= 500:
            logger.warning("Watch on %s refused: %s", namespace, exc.detail, exc_info=exc.__cause__ or exc)
        return _problem(exc)
    hub.wake(namespace, revision, namespace_id)
    if revision <= index:
        await hub.wait(namespace, index, wait)
        try:
            reveal = await hub.run_db(partial(_recheck, own_thread=True), request, namespace)
        except exceptions.APIException as exc:
            return _problem(exc)
    try:
        snapshot = await hub.snapshot(namespace, hub.known_revision(namespace, revision))
    except Http404:
        return problem_response(404, f"No namespace {namespace!r}.")
    return _answer(snapshot, reveal)


def _answer(snapshot, reveal: bool) -> HttpResponse:  # type: ignore[no-untyped-def]
    response = HttpResponse(snapshot.json_body(reveal=reveal), content_type="application/json")
    response["X-Config-Index"] = str(snapshot.revision)
    response["ETag"] = f'"{snapshot.revision}"'
    response["Cache-Control"] = "no-store"
    return response


def config_watch(request: HttpRequest, namespace: str) -> HttpResponse:
    """The watch path as reached through the URLconf (WSGI): never blocks a sync worker.

    The ASGI entry (`configstore.asgi`, which `controlplane.asgi` serves) answers this path itself and
    blocks there; a request that reaches a WSGI worker gets an immediate answer when the revision is
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
