"""Per-key rate limiting on the shared cache, failing closed.

Counting follows django-ratelimit exactly (its fixed windows with a per-key offset, its cache keys),
through its `get_usage` on the embedded local-memory cache. On Redis the same counter is taken in one
round trip (a small Lua script) that also reads the API-key generation (see `keycache`): SET NX EX + INCR are
atomic, so the count is exact across every gunicorn worker and host. When the store cannot
be reached the request is refused with 503, never let through unlimited.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.core.cache import cache
from django.http import HttpRequest
from django_ratelimit.core import EXPIRATION_FUDGE, _get_window, _make_cache_key, _split_rate, get_usage

from controlplane.access import keycache
from controlplane.errors import ServiceUnavailable

GROUP = "api"


@dataclass(frozen=True)
class RateLimitUsage:
    """What the `RateLimit-*` headers report for one request."""

    limit: int
    remaining: int
    reset: int
    limited: bool
    generation: int | None = None


def ratelimit_hit(request: HttpRequest, *, key_prefix: str, rate: str) -> RateLimitUsage:
    """Count one request for `key_prefix` against `rate` and say whether it is over the limit."""
    if keycache.enabled():
        return _redis_hit(key_prefix, rate)
    try:
        usage = get_usage(request, group=GROUP, key=lambda _group, _request: key_prefix, rate=rate, increment=True)
    except Exception as exc:  # noqa: BLE001 - store down: fail closed
        raise ServiceUnavailable("The rate-limit store is unavailable; request refused.") from exc
    if usage is None:
        raise ServiceUnavailable("Rate limiting is misconfigured; request refused.")
    limit, _period = _split_rate(rate)
    return RateLimitUsage(
        limit=limit,
        remaining=max(limit - usage["count"], 0),
        reset=max(int(usage["time_left"]), 0),
        limited=usage["should_limit"],
    )


# One round trip: read the key generation, start the window's counter if new, count this request.
_COUNT_LUA = """
local generation = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[2], 0, 'EX', ARGV[1], 'NX')
return {generation, redis.call('INCR', KEYS[2])}
"""
_script = None


def _count_script():  # type: ignore[no-untyped-def]
    global _script
    if _script is None:
        _script = cache.client.get_client(write=True).register_script(_COUNT_LUA)  # django-redis client
    return _script


def _redis_hit(key_prefix: str, rate: str) -> RateLimitUsage:
    limit, period = _split_rate(rate)
    window = _get_window(key_prefix, period)
    counter = cache.make_key(_make_cache_key(GROUP, window, rate, key_prefix, "ALL"))
    generation_key = cache.make_key(keycache.GENERATION_KEY)
    try:
        generation, count = _count_script()(keys=[generation_key, counter], args=[period + EXPIRATION_FUDGE])
    except Exception as exc:  # noqa: BLE001 - store down: fail closed
        raise ServiceUnavailable("The rate-limit store is unavailable; request refused.") from exc
    return RateLimitUsage(
        limit=limit,
        remaining=max(limit - count, 0),
        reset=max(window - int(time.time()), 0),
        limited=count > limit,
        generation=int(generation) if generation is not None else None,
    )
