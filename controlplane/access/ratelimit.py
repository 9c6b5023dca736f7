"""Per-key rate limiting with django-ratelimit on the shared cache, failing closed.

The counter lives in the `default` cache (Redis in production, where `incr` is atomic across every
gunicorn worker and host). When the cache cannot be reached the request is refused with 503, never
let through unlimited.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpRequest
from django_ratelimit.core import _split_rate, get_usage

from controlplane.errors import ServiceUnavailable

GROUP = "api"


@dataclass(frozen=True)
class RateLimitUsage:
    """What the `RateLimit-*` headers report for one request."""

    limit: int
    remaining: int
    reset: int
    limited: bool


def ratelimit_hit(request: HttpRequest, *, key_prefix: str, rate: str) -> RateLimitUsage:
    """Count one request for `key_prefix` against `rate` and say whether it is over the limit."""
    try:
        usage = get_usage(request, group=GROUP, key=lambda _group, _request: key_prefix, rate=rate, increment=True)
    except Exception as exc:  # noqa: BLE001 - cache down: fail closed
        raise ServiceUnavailable("The rate-limit store is unavailable; request refused.") from exc
    if usage is None:  # cannot happen with a rate given; treat as misconfiguration, closed
        raise ServiceUnavailable("Rate limiting is misconfigured; request refused.")
    limit, _period = _split_rate(rate)
    remaining = max(limit - usage["count"], 0)
    return RateLimitUsage(
        limit=limit, remaining=remaining, reset=max(int(usage["time_left"]), 0), limited=usage["should_limit"]
    )
