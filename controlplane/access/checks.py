"""`check --deploy`: the shared Redis must have the properties key revocation relies on (see `coherence`)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register


@register(Tags.caches, deploy=True)
def check_coherence_redis(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Redis Cluster is an error (revocation cannot work); an allkeys-* eviction policy is a warning."""
    if not settings.REDIS_URL:
        return []  # embedded mode: nothing is shared, nothing to check
    from controlplane import coherence

    try:
        found = coherence.redis_properties()
    except Exception as exc:  # noqa: BLE001 - an unreachable Redis is reported, not raised
        return [Warning(f"Could not read the shared Redis's properties: {exc}", id="access.W002")]
    messages: list[CheckMessage] = []
    if found["cluster"]:
        messages.append(
            Error(
                "REDIS_URL points at Redis Cluster, which is not supported.",
                hint="Use a single Redis server (with replicas and Sentinel for failover if needed).",
                id="access.E001",
            )
        )
    policy = found["maxmemory_policy"]
    if policy in coherence.UNSAFE_EVICTION:
        messages.append(
            Warning(
                f"Redis maxmemory-policy is {policy}: under memory pressure Redis may evict the API-key "
                "coherence registry, and a revoked key may then keep working in some processes for a while.",
                hint="CONFIG SET maxmemory-policy noeviction (or a volatile-* policy) on the shared Redis.",
                id="access.W001",
            )
        )
    elif policy == "unknown":
        messages.append(
            Warning(
                "Redis maxmemory-policy could not be read (CONFIG is disabled).",
                hint="Make sure the shared Redis does not use an allkeys-* eviction policy.",
                id="access.W003",
            )
        )
    return messages
