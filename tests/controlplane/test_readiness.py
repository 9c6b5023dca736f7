"""/readyz: worker heartbeats instead of a broker ping, `degraded` when check results go stale, and fast."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from controlplane.observability.heartbeats import worker_component
from controlplane.observability.models import Heartbeat
from registry.models import CheckResult
from tests.registry.factories import CheckFactory

pytestmark = pytest.mark.django_db


def _readyz() -> tuple[int, dict]:
    response = Client().get("/readyz")
    return response.status_code, response.json()


def _result(check, at) -> CheckResult:  # type: ignore[no-untyped-def]
    return CheckResult.objects.create(health_check=check, status="passing", created_at=at)


def test_fresh_results_are_up_and_stale_ones_are_degraded(settings) -> None:  # type: ignore[no-untyped-def]
    settings.READYZ_STALE_DISPATCH_INTERVALS = 10
    now = timezone.now()
    check = CheckFactory(interval=5, timeout=2, next_run_at=now - timedelta(minutes=5))
    _result(check, now - timedelta(seconds=2))
    status, body = _readyz()
    assert status == 200 and body["status"] == "ready", body
    assert body["components"]["checks"]["status"] == "up"

    # Checks due for minutes and nothing recorded for longer than 10 dispatch intervals: degraded (200).
    CheckResult.objects.update(created_at=now - timedelta(seconds=60))
    status, body = _readyz()
    assert status == 200 and body["status"] == "degraded", body
    entry = body["components"]["checks"]
    assert entry["status"] == "degraded" and "overdue" in entry["error"] and entry["required"] is False

    # Never any result at all counts as stale too.
    CheckResult.objects.all().delete()
    assert _readyz()[1]["components"]["checks"]["status"] == "degraded"


def test_no_overdue_check_is_not_stale_however_old_the_last_result(settings) -> None:  # type: ignore[no-untyped-def]
    settings.READYZ_STALE_DISPATCH_INTERVALS = 10
    now = timezone.now()
    check = CheckFactory(interval=3600, timeout=2, next_run_at=now + timedelta(minutes=30))
    _result(check, now - timedelta(hours=1))
    CheckFactory(enabled=False, next_run_at=now - timedelta(hours=1))  # disabled checks are never due
    assert _readyz()[1]["components"]["checks"]["status"] == "up"


def test_a_slow_probe_still_within_its_timeout_is_not_stale(settings) -> None:  # type: ignore[no-untyped-def]
    settings.READYZ_STALE_DISPATCH_INTERVALS = 10
    now = timezone.now()
    # Due 40 s ago with a 60 s timeout: its probe may still be running.
    check = CheckFactory(interval=120, timeout=60, next_run_at=now - timedelta(seconds=40))
    _result(check, now - timedelta(seconds=50))
    assert _readyz()[1]["components"]["checks"]["status"] == "up"


def test_stale_checks_are_unavailable_when_required(settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("READYZ_REQUIRED", "database,checks")
    settings.READYZ_STALE_DISPATCH_INTERVALS = 5
    CheckFactory(timeout=1, next_run_at=timezone.now() - timedelta(minutes=10))
    status, body = _readyz()
    assert status == 503 and body["status"] == "unavailable"


def test_workers_come_from_heartbeats_not_a_broker_ping(settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from controlplane.celery import app

    def no_ping(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("/readyz must not ping workers through the broker")

    monkeypatch.setattr(app.control, "ping", no_ping)
    settings.WORKER_HEARTBEAT_MAX_AGE = 30
    assert _readyz()[1]["components"]["workers"]["status"] == "down"
    now = timezone.now()
    Heartbeat.objects.create(component=worker_component("probes@host"), seen_at=now - timedelta(seconds=3))
    Heartbeat.objects.create(component=worker_component("deliveries@host"), seen_at=now)
    Heartbeat.objects.create(component=worker_component("gone@host"), seen_at=now - timedelta(minutes=5))
    Heartbeat.objects.create(component="beat", seen_at=now)
    entry = _readyz()[1]["components"]["workers"]
    assert entry["status"] == "up" and entry["workers"] == ["deliveries@host", "probes@host"], entry
    assert 2.5 <= entry["heartbeat_age_seconds"] < 10


def test_long_worker_names_fit_the_heartbeat_row() -> None:
    name = worker_component("deliveries@" + "a" * 80)
    assert len(name) <= 50 and name.startswith("worker:deliveries@")
    assert name != worker_component("deliveries@" + "a" * 79 + "b")


def test_readyz_answers_fast() -> None:
    """The functional structure: no component waits on a remote reply (each reported with its duration)."""
    Client().get("/readyz")  # warm up the connections
    started = time.perf_counter()
    status, body = _readyz()
    elapsed_ms = (time.perf_counter() - started) * 1000
    assert set(body["components"]) == {"database", "cache", "coherence", "broker", "workers", "beat", "checks"}
    assert all("duration_ms" in entry for entry in body["components"].values())
    # Generous bound for a loaded 2-core CI machine; the figure measured is in docs/operations.md.
    assert elapsed_ms < 500, (elapsed_ms, body)
    print(f"/readyz answered in {elapsed_ms:.1f} ms: {[(k, v['duration_ms']) for k, v in body['components'].items()]}")


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_records_its_heartbeat(celery_worker_process) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        rows = list(Heartbeat.objects.filter(component__startswith="worker:").values_list("component", "seen_at"))
        if rows:
            break
        time.sleep(0.2)
    assert rows, celery_worker_process.log_path.read_text()[-2000:]
    first_seen = rows[0][1]
    time.sleep(6)  # every 5 s
    assert Heartbeat.objects.get(component=rows[0][0]).seen_at > first_seen
    entry = _readyz()[1]["components"]["workers"]
    assert entry["status"] == "up" and entry["workers"][0].startswith("test-")


_BROKER_PROBE = """
import time, django
django.setup()
from controlplane.observability.readiness import check_broker
for _ in range(3):  # pooled: the same connection answers every call
    started = time.perf_counter()
    try:
        check_broker()
        print("up", round(time.perf_counter() - started, 2))
    except Exception as exc:
        print("down", type(exc).__name__, round(time.perf_counter() - started, 2))
"""


@pytest.mark.redis
def test_the_broker_check_answers_up_and_notices_an_unreachable_redis() -> None:
    import subprocess
    import sys

    from tests.conftest import REDIS_URL, subprocess_env

    def probe(url: str) -> list[list[str]]:
        env = subprocess_env(CELERY_BROKER_URL=url)
        result = subprocess.run(
            [sys.executable, "-c", _BROKER_PROBE], env=env, capture_output=True, text=True, timeout=60
        )
        return [line.split() for line in result.stdout.splitlines() if line.startswith(("up", "down"))]

    up = probe(REDIS_URL)
    assert [line[0] for line in up] == ["up"] * 3, up
    down = probe("redis://127.0.0.1:9/0")  # nothing listens on the discard port
    assert [line[0] for line in down] == ["down"] * 3, down
    assert all(float(line[-1]) < 5 for line in down), down
