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

    # First attempt answers 500, the retry (after the 1 s backoff) 200.
    delivered = wait_until(lambda: Delivery.objects.filter(run_id=run["id"], status="delivered").first(), timeout=40)
    assert delivered.attempts == 2 and delivered.last_status_code == 200
    assert [r["json"]["payload"] for r in receiver.requests] == [{"send": True}, {"send": True}]
    assert client.get(url).json()["deliveries"][0]["status"] == "delivered"
