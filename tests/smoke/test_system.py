"""Smoke: the whole system under `manage.py serve` — start-up, API, readiness, a beat-driven task, shutdown."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from django.core.management.sql import emit_post_migrate_signal
from django.utils import timezone

from controlplane.events.models import DeliveryStatus, Event, WebhookDelivery
from tests.conftest import subprocess_env
from tests.factories import APIKeyFactory, WebhookSubscriptionFactory
from tests.processes import ServeProcess, pid_alive
from tests.receivers import Receiver

pytestmark = [pytest.mark.smoke, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _get(url: str, key: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers={"Authorization": f"Api-Key {key}"} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_whole_system_starts_serves_runs_beat_tasks_and_stops(tmp_path, settings) -> None:  # type: ignore[no-untyped-def]
    settings.EGRESS_ALLOW_NETWORKS = ["127.0.0.0/8"]  # the webhook receiver below is on loopback (children inherit)
    # Transactional tests flush the database; put the default schedules back as a fresh install has them.
    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")
    _, raw = APIKeyFactory.create_with_plaintext(scopes=["events:read"])
    serve = ServeProcess(subprocess_env(READYZ_REQUIRED="database,cache,broker,workers,beat"), tmp_path)
    with Receiver() as receiver:
        try:
            serve.wait_ready()
            status, body = _get(f"{serve.base}/api/v1/events/", raw)
            assert status == 200 and "results" in body
            status, body = _get(f"{serve.base}/api/v1/events/")
            assert status == 401

            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                status, ready = _get(f"{serve.base}/readyz")
                if status == 200:
                    break
                time.sleep(1)
            assert status == 200, ready
            assert all(c["status"] == "up" for c in ready["components"].values()), ready

            # A delivery nobody queued: only beat's sweep can get it to a worker and out.
            subscription = WebhookSubscriptionFactory(url=receiver.url, kinds=["smoke.*"])
            event = Event.objects.create(kind="smoke.tick", actor="test", subject="s")
            delivery = WebhookDelivery.objects.create(
                subscription=subscription, event=event, next_attempt_at=timezone.now()
            )
            assert receiver.wait_for(1, timeout=30), serve.output[-3000:]
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                delivery.refresh_from_db()
                if delivery.status == DeliveryStatus.DELIVERED:
                    break
                time.sleep(0.2)
            assert delivery.status == DeliveryStatus.DELIVERED
        finally:
            code = serve.stop()
    assert code == 0, serve.output[-3000:]
    for name in ("web", "watch", "probes", "deliveries", "housekeeping", "beat"):
        for pid in serve.child_pids(name):
            assert not pid_alive(pid), (name, pid)
