"""Readiness checks per component, for /readyz."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from controlplane.env import env_list

ComponentCheck = Callable[[], dict[str, Any]]


def check_database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"vendor": connection.vendor}


def check_cache() -> dict[str, Any]:
    probe_key = f"readyz:{uuid.uuid4().hex}"
    cache.set(probe_key, "1", 5)
    if cache.get(probe_key) != "1":
        raise RuntimeError("cache did not return what was written")
    cache.delete(probe_key)
    return {"backend": settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]}


def check_broker() -> dict[str, Any]:
    from controlplane.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=1)
        return {"transport": conn.transport_cls if isinstance(conn.transport_cls, str) else str(conn.transport_cls)}


def check_workers() -> dict[str, Any]:
    from controlplane.celery import app

    replies = app.control.ping(timeout=1.0) or []
    if not replies:
        raise RuntimeError("no Celery worker answered a ping within 1 s")
    return {"workers": sorted(name for reply in replies for name in reply)}


def check_beat() -> dict[str, Any]:
    from controlplane.observability.models import Heartbeat

    beat = Heartbeat.objects.filter(component="beat").first()
    if beat is None:
        raise RuntimeError("beat has never reported")
    age = (timezone.now() - beat.seen_at).total_seconds()
    if age > settings.BEAT_HEARTBEAT_MAX_AGE:
        raise RuntimeError(f"last beat heartbeat {age:.0f} s ago")
    return {"heartbeat_age_seconds": round(age, 1)}


def check_coherence() -> dict[str, Any]:
    """The shared Redis has what key revocation relies on: no allkeys-* eviction, not Redis Cluster."""
    if not settings.REDIS_URL:
        return {"detail": "not used (no shared cache)"}
    from controlplane import coherence

    found = coherence.redis_properties()
    if found["problems"]:
        raise RuntimeError("; ".join(found["problems"]))
    detail: dict[str, Any] = {"maxmemory_policy": found["maxmemory_policy"], "cluster": found["cluster"]}
    if found["warnings"]:
        detail["warnings"] = found["warnings"]
    return detail


COMPONENTS: dict[str, ComponentCheck] = {
    "database": check_database,
    "cache": check_cache,
    "coherence": check_coherence,
    "broker": check_broker,
    "workers": check_workers,
    "beat": check_beat,
}


def required_components() -> set[str]:
    """Components whose failure makes /readyz answer 503 (READYZ_REQUIRED, default database,cache,broker)."""
    return set(env_list("READYZ_REQUIRED", ["database", "cache", "broker"]))


def readiness_report() -> tuple[bool, dict[str, Any]]:
    """Run every component check; return (ready, report)."""
    required = required_components()
    report: dict[str, Any] = {}
    ready = True
    for name, check in COMPONENTS.items():
        started = time.perf_counter()
        try:
            detail = check()
            entry = {"status": "up", **detail}
        except Exception as exc:  # noqa: BLE001 - any failure means "down", with a short reason
            entry = {"status": "down", "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
            if name in required:
                ready = False
        entry["required"] = name in required
        entry["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)
        report[name] = entry
    return ready, report
