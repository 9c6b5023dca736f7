"""Async runs and deliveries through a real Celery worker (separate process, same test database)."""

from __future__ import annotations

import json
import time

import pytest

from pipelines.models import Delivery, Run
from tests.conftest import key_client
from tests.pipelines.conftest import register_service
from tests.pipelines.factories import PipelineFactory, transform_step

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def wait_until(predicate, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_async_runs_and_a_retried_delivery_through_the_worker(celery_worker_process, scripted_receiver) -> None:  # type: ignore[no-untyped-def]
    receiver = scripted_receiver([500, 200])
    register_service("billing", receiver.port)
    route = {
        "name": "send",
        "kind": "route",
        "priority": 1000,
        "config": {"rules": [{"when": "payload.send", "to": {"service": "billing"}}], "default": "kept"},
    }
    PipelineFactory(slug="async", steps=[transform_step("v1"), route])
    client = key_client("pipelines:run")

    accepted = client.post(
        "/api/v1/pipelines/async/run/?async=true",
        data=json.dumps({"payload": {"send": True}}),
        content_type="application/json",
    )
    assert accepted.status_code == 202 and accepted["Location"] == accepted.json()["url"]
    assert accepted.json()["status"] == "pending"

    # The run is pinned to the version accepted, even if the definition changes before the worker runs it.
    from pipelines.models import Pipeline
    from pipelines.services import pipeline_update

    pipeline_update(Pipeline.objects.get(slug="async"), steps=[transform_step("v2"), route])
    batch = client.post(
        "/api/v1/pipelines/async/batch/?async=true",
        data=json.dumps([{"payload": {"send": False}}] * 3),
        content_type="application/json",
    )
    assert batch.status_code == 202 and len(batch.json()["runs"]) == 3

    url = accepted.json()["url"]
    run = wait_until(lambda: (body := client.get(url).json())["status"] not in ("pending", "running") and body)
    assert run["status"] == "succeeded" and run["pipeline_version"] == 1
    assert run["output"]["tags"] == ["v1"] and run["routes"] == ["service:billing"]
    later = [
        wait_until(lambda r=r: Run.objects.filter(pk=r["run_id"], status="succeeded").first())
        for r in batch.json()["runs"]
    ]
    assert {(r.version, tuple(r.output["tags"]), tuple(r.routes)) for r in later} == {(2, ("v2",), ("kept",))}

    # First attempt answers 500, the retry (after the 1 s backoff, queued by the engine's sweep as beat
    # does every 5 s) 200.
    from controlplane.delivery.tasks import deliveries_sweep

    def delivered_after_sweep():  # type: ignore[no-untyped-def]
        deliveries_sweep.delay()
        time.sleep(0.5)
        return Delivery.objects.filter(run_id=run["id"], status="delivered").first()

    delivered = wait_until(delivered_after_sweep, timeout=40)
    assert delivered.attempts == 2 and delivered.last_status_code == 200
    assert [r["json"]["payload"] for r in receiver.requests] == [{"send": True}, {"send": True}]
    assert client.get(url).json()["deliveries"][0]["status"] == "delivered"


def test_a_run_lost_with_its_worker_is_queued_again_and_completes(celery_worker_process) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from django.utils import timezone

    from pipelines.executor import prepare_packet
    from pipelines.services import runs_recover

    packet = prepare_packet({"payload": {"n": 1}})
    pipeline = PipelineFactory(slug="lost", steps=[transform_step("done")])
    # What a worker killed mid-run leaves: claimed (`running`) long ago, never finished; and a run whose
    # queue message was lost (`pending`, old, never claimed).
    long_ago = timezone.now() - timedelta(hours=1)
    stalled = Run.objects.create(pipeline=pipeline, version=1, mode="async", status="running", input=packet, attempts=1)
    unclaimed = Run.objects.create(pipeline=pipeline, version=1, mode="async", status="pending", input=packet)
    Run.objects.filter(pk__in=[stalled.pk, unclaimed.pk]).update(started_at=long_ago, queued_at=long_ago)
    Run.objects.filter(pk=unclaimed.pk).update(started_at=None)

    assert runs_recover() == {"stalled": 1, "queued": 2, "failed": 0}
    for run in (stalled, unclaimed):
        finished = wait_until(
            lambda run=run: Run.objects.exclude(status__in=["pending", "running"]).filter(pk=run.pk).first()
        )
        assert (finished.status, finished.output["tags"]) == ("succeeded", ["done"]), finished.error
    assert Run.objects.get(pk=stalled.pk).attempts == 2
