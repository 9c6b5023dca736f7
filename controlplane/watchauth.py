"""The API's key checks for blocking queries: at the start (on the hub's threads) and again before answering.

The same rules as every API request (authentication, scope, rate limit with its headers, the key
generation), so a watch is refused exactly where a plain GET would be. After the wait the key is checked
again without counting the rate limit: a watch can wait for minutes, and a key revoked, deleted, expired
or narrowed meanwhile (in any process: the shared generation moved) must get a refusal, not the change
it waited for. That re-check is a cached one when it can be (`recheck_cached`): one change wakes every
watcher at once, and a database read each would queue them all on the hub's few threads.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from rest_framework import exceptions

from controlplane import watchhub
from controlplane.access import keycache
from controlplane.access.authentication import authenticate_key
from controlplane.access.ratelimit import ratelimit_hit
from controlplane.access.scopes import grants
from controlplane.errors import problem_response


def _require(key: Any, scope: str) -> None:
    if not grants(key.scopes, scope):
        raise exceptions.PermissionDenied(f"The API key lacks the scope {scope}.")


def authorize(request: HttpRequest, scope: str) -> Any:
    """Authenticate, check `scope`, count the rate limit; the key record (also kept as `request.watch_key`).

    Blocking: run on the hub's threads. Raises DRF API exceptions (`problem` turns them into answers).
    """
    key = authenticate_key(request)
    _require(key, scope)
    usage = ratelimit_hit(request, key_prefix=key.prefix, rate=key.effective_rate)
    request.ratelimit_usage = usage  # type: ignore[attr-defined]
    if keycache.enabled() and not keycache.confirm(key, usage.generation):
        key = authenticate_key(request)  # a key changed somewhere since this process cached this one
        _require(key, scope)
    if usage.limited:
        raise exceptions.Throttled(wait=max(usage.reset, 1))
    request.watch_key = key  # type: ignore[attr-defined]
    return key


def recheck(request: HttpRequest, scope: str) -> Any:
    """The key again after the wait, from the database when it changed anywhere (blocking); raises like `authorize`."""
    key = authenticate_key(request)  # revocation and expiry of this process's copy, checked every time
    if keycache.enabled():
        generation = keycache.trusted_generation()
        if generation is None:
            generation = keycache.current_generation()
        if not keycache.confirm(key, generation):
            key = authenticate_key(request)  # changed somewhere since it was cached: from the database
    _require(key, scope)
    return key


def recheck_cached(request: HttpRequest, hub: watchhub.WatchHub, waited_since: float | None, scope: str) -> Any:
    """The key record the watch authenticated with, when it provably still holds, without a thread; else None.

    This process's copy of a key record is current as long as the shared key generation it was loaded
    at has not moved (`keycache`); the generation this process trusts (`coherence`) is read once per
    wake-up (`hub.wake_memo`, made when the change arrived, so never older than it). Revocation, expiry
    and scopes are fields of that copy, checked here. None (the caller runs `recheck`) when nothing can be
    trusted: embedded mode, no listener, a timeout (`waited_since` None), a memo from before this watch
    began waiting, a key whose copy is stale, revoked or expired (`recheck` gives the right refusal).
    """
    key = getattr(request, "watch_key", None)
    if key is None or waited_since is None or not keycache.enabled():
        return None
    memo = hub.wake_memo
    if memo["at"] < waited_since:
        return None
    if "generation" not in memo:
        memo["generation"] = keycache.trusted_generation()
    generation = memo["generation"]
    if generation is None or getattr(key, "cached_generation", None) != generation:
        return None
    if key.revoked or key.is_expired:
        return None
    _require(key, scope)
    return key


async def key_after_wait(request: HttpRequest, hub: watchhub.WatchHub, waited_since: float | None, scope: str) -> Any:
    """`recheck_cached`, else `recheck` on the hub's threads."""
    key = recheck_cached(request, hub, waited_since, scope)
    if key is None:
        key = await hub.run_db(recheck, request, scope)
    return key


def problem(exc: exceptions.APIException) -> Any:
    """The problem+json answer for a refusal, with the headers the API sends with it."""
    headers = {}
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        headers["WWW-Authenticate"] = 'Api-Key realm="controlplane"'
    if isinstance(exc, exceptions.Throttled) and exc.wait:
        headers["Retry-After"] = str(int(exc.wait))
    return problem_response(exc.status_code, str(exc.detail), code=exc.default_code, headers=headers)
