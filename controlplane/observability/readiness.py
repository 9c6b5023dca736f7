"""Readiness checks per component, for /readyz."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import timedelta
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
    """The broker answers now: a pooled connection (no TCP set-up per request) and, on Redis, a PING."""
    from controlplane.celery import app

    with app.pool.acquire(block=True, timeout=1) as conn:
        conn.ensure_connection(max_retries=1, timeout=1)
        client = getattr(conn.default_channel, "client", None)
        if client is not None and callable(getattr(client, "ping", None)):
            client.ping()  # a pooled connection may have gone stale: one round trip proves it answers
        return {"transport": conn.transport_cls if isinstance(conn.transport_cls, str) else str(conn.transport_cls)}


def check_workers() -> dict[str, Any]:
    """Workers whose heartbeat (`observability.heartbeats`, every 5 s) is fresh: one query, no broker ping."""
    from controlplane.observability.heartbeats import PREFIX
    from controlplane.observability.models import Heartbeat

    now = timezone.now()
    fresh = now - timedelta(seconds=settings.WORKER_HEARTBEAT_MAX_AGE)
    rows = list(
        Heartbeat.objects.filter(component__startswith=PREFIX, seen_at__gte=fresh)
        .order_by("component")
        .values_list("component", "seen_at")
    )
    if not rows:
        raise RuntimeError(f"no Celery worker heartbeat in the last {settings.WORKER_HEARTBEAT_MAX_AGE} s")
    return {
        "workers": [component[len(PREFIX) :] for component, _ in rows],
        "heartbeat_age_seconds": round(max((now - seen).total_seconds() for _, seen in rows), 1),
    }


class Degraded(Exception):
    """A component works but not as it should (stale check results): reported, 503 only if required."""


#: The check dispatcher's period (beat, `registry: dispatch due checks`).
DISPATCH_INTERVAL_SECONDS = 1.0


def check_checks() -> dict[str, Any]:
    """`degraded` when probed checks are overdue and no result was recorded for N dispatch intervals.

    Overdue: due longer ago than the stale window plus the check's own timeout (a slow probe still
    running is not stale). Both reads use indexes (`next_run_at`, `CheckResult.created_at`).
    """
    from registry.models import Check, CheckResult

    window = settings.READYZ_STALE_DISPATCH_INTERVALS * DISPATCH_INTERVAL_SECONDS
    now = timezone.now()
    candidates = (
        Check.objects.probed()
        .filter(next_run_at__lte=now - timedelta(seconds=window))
        .order_by("next_run_at")
        .values_list("next_run_at", "timeout")[:1000]
    )
    overdue = [due for due, timeout in candidates if due + timedelta(seconds=window + (timeout or 60)) < now]
    latest = CheckResult.objects.order_by("-created_at").values_list("created_at", flat=True).first()
    detail: dict[str, Any] = {
        "stale_after_seconds": window,
        "last_result_age_seconds": round((now - latest).total_seconds(), 1) if latest else None,
    }
    if overdue and (latest is None or (now - latest).total_seconds() > window):
        raise Degraded(
            f"{len(overdue)}{'+' if len(overdue) == 1000 else ''} checks are overdue and no check result "
            f"was recorded for {window:g} s (probe workers stalled, or beat not dispatching)"
        )
    detail["overdue"] = len(overdue)
    return detail


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
    "checks": check_checks,
}


def required_components() -> set[str]:
    """Components whose failure makes /readyz answer 503 (READYZ_REQUIRED, default database,cache,broker)."""
    return set(env_list("READYZ_REQUIRED", ["database", "cache", "broker"]))


def readiness_report() -> tuple[str, dict[str, Any]]:
    """Run every component check; return (status, report).

    Status: `unavailable` when a required component is down or degraded, else `degraded` when any
    component is degraded, else `ready`.
    """
    required = required_components()
    report: dict[str, Any] = {}
    status = "ready"
    for name, check in COMPONENTS.items():
        started = time.perf_counter()
        try:
            detail = check()
            entry = {"status": "up", **detail}
        except Degraded as exc:
            entry = {"status": "degraded", "error": str(exc)[:300]}
            if name in required:
                status = "unavailable"
            elif status == "ready":
                status = "degraded"
        except Exception as exc:  # noqa: BLE001 - any failure means "down", with a short reason
            entry = {"status": "down", "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
            if name in required:
                status = "unavailable"
        entry["required"] = name in required
        entry["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)
        report[name] = entry
    return status, report
