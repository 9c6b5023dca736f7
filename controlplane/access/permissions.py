"""Scope permission and per-key rate limiting for DRF views.

Every API view declares the scope each action needs in `required_scopes`, a dict from DRF action
(`list`, `retrieve`, `create`, `run`, ...) or HTTP method (`GET`, `POST`, ...) to a scope; the key `*`
is the fallback. A view with no declaration refuses every request (fail closed), and a test walks all
routes to make sure none is reachable without a key.
"""

from __future__ import annotations

from rest_framework import exceptions, permissions, throttling

from controlplane.access import keycache
from controlplane.access.authentication import ApiKeyUser, authenticate_key
from controlplane.access.models import APIKey
from controlplane.access.ratelimit import RateLimitUsage, ratelimit_hit
from controlplane.access.scopes import grants


def scope_for(view, method: str) -> str | None:  # type: ignore[no-untyped-def]
    """The scope `view` declares for its current action or `method`, or None when undeclared."""
    declared: dict[str, str] = getattr(view, "required_scopes", None) or {}
    action = getattr(view, "action", None)
    if action and action in declared:
        return declared[action]
    return declared.get(method.upper()) or declared.get("*")


class HasScope(permissions.BasePermission):
    """Allows a request whose API key holds the scope the view declares for it (or `admin`)."""

    message = "The API key does not have the scope this route needs."

    def has_permission(self, request, view) -> bool:  # type: ignore[no-untyped-def]
        key = request.auth
        if not isinstance(key, APIKey):
            raise exceptions.NotAuthenticated()
        needed = scope_for(view, request.method)
        if needed is None:
            return False
        if not grants(key.scopes, needed):
            self.message = f"The API key lacks the scope {needed}."
            return False
        return True


class ApiKeyRateThrottle(throttling.BaseThrottle):
    """Counts each authorized request against its key's rate (django-ratelimit on the shared cache)."""

    usage: RateLimitUsage | None = None

    def allow_request(self, request, view) -> bool:  # type: ignore[no-untyped-def]
        key = request.auth
        if not isinstance(key, APIKey):
            return True
        # A view may name cache keys to read in the same round trip (`rate_limit_prefetch(request)`).
        prefetch = getattr(view, "rate_limit_prefetch", None)
        shared = keycache.enabled()
        also_get = prefetch(request) if prefetch is not None and shared else ()
        # Knowing the key generation (and the prefetched values) without asking, see `coherence`, lets
        # the count come from a lease: no round trip at all.
        trusted, known = keycache.trusted(also_get) if shared else (None, None)
        self.usage = ratelimit_hit(
            request._request,
            key_prefix=key.prefix,
            rate=key.effective_rate,
            also_get=also_get,
            leased=trusted is not None,
            known=known,
        )
        request._request.ratelimit_usage = self.usage
        generation = trusted if trusted is not None else self.usage.generation
        if shared and not keycache.confirm(key, generation):
            # A key changed somewhere since this process cached this one: re-check it for real, and let
            # the view see the fresh record (its namespace limits), not the stale one.
            key = authenticate_key(request._request)
            if not grants(key.scopes, scope_for(view, request.method) or ""):
                raise exceptions.PermissionDenied("The API key lacks the scope this route needs.")
            request.user, request.auth = ApiKeyUser(key), key
        return not self.usage.limited

    def wait(self) -> float | None:
        return float(max(self.usage.reset, 1)) if self.usage else None
