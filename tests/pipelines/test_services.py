"""Definition services (validation, versions, events) and the run services' persistence rules."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from controlplane.events.models import Event
from pipelines import selectors, services
from pipelines.executor import prepare_packet
from pipelines.models import Pipeline, PipelineVersion, Run, Step, StepStats
from pipelines.stats import accumulator, stats_flush
from tests.pipelines.factories import PipelineFactory, transform_step

pytestmark = pytest.mark.django_db


def test_create_stores_steps_version_and_event() -> None:
    pipeline = PipelineFactory(
        slug="orders", steps=[transform_step("a"), transform_step("b", priority=5)], actor="user:ann"
    )
    assert pipeline.version == 1
    assert [s.name for s in selectors.steps_ordered(pipeline)] == ["b", "a"]
    snapshot = PipelineVersion.objects.get(pipeline=pipeline, version=1).definition
    assert [s["name"] for s in snapshot["steps"]] == ["a", "b"]
    event = Event.objects.get(kind="pipeline.changed", subject="orders")
    assert event.actor == "user:ann" and event.data["action"] == "created"


def test_invalid_definition_saves_nothing_and_names_the_step() -> None:
    bad = {"name": "broken", "kind": "filter", "config": {"when": "a[["}}
    with pytest.raises(ValidationError) as caught:
        services.pipeline_create(slug="x", name="X", steps=[transform_step("ok"), bad])
    assert "steps.1.config" in caught.value.message_dict
    assert "broken" in caught.value.message_dict["steps.1.config"][0]
    assert not Pipeline.objects.exists() and not Step.objects.exists() and not Event.objects.exists()


def test_update_bumps_version_replaces_steps_and_keeps_old_versions() -> None:
    pipeline = PipelineFactory(steps=[transform_step("a"), transform_step("b")])
    step_a = pipeline.steps.get(name="a")
    services.pipeline_update(pipeline, steps=[transform_step("a", priority=1), transform_step("c")], description="new")
    pipeline.refresh_from_db()
    assert pipeline.version == 2 and pipeline.description == "new"
    assert sorted(pipeline.steps.values_list("name", flat=True)) == ["a", "c"]
    assert pipeline.steps.get(name="a").pk == step_a.pk, "steps are matched by name, not recreated"
    assert set(PipelineVersion.objects.filter(pipeline=pipeline).values_list("version", flat=True)) == {1, 2}
    services.pipeline_set_enabled(pipeline, enabled=False)
    pipeline.refresh_from_db()
    assert pipeline.version == 3 and not pipeline.enabled
    assert Event.objects.filter(kind="pipeline.changed").count() == 3


def test_invalid_update_changes_nothing() -> None:
    pipeline = PipelineFactory(steps=[transform_step("a")])
    with pytest.raises(ValidationError):
        services.pipeline_update(
            pipeline, name="renamed", steps=[{"name": "a", "kind": "route", "config": {"rules": "no"}}]
        )
    pipeline.refresh_from_db()
    assert pipeline.version == 1 and pipeline.name != "renamed"
    assert list(pipeline.steps.values_list("kind", flat=True)) == ["transform"]


def test_swapping_step_names_in_one_update_works() -> None:
    pipeline = PipelineFactory(steps=[transform_step("a"), transform_step("b")])
    ids = {s.name: s.pk for s in pipeline.steps.all()}
    services.pipeline_update(
        pipeline, steps=[transform_step("b") | {"id": ids["a"]}, transform_step("a") | {"id": ids["b"]}]
    )
    assert dict(pipeline.steps.values_list("name", "pk")) == {"b": ids["a"], "a": ids["b"]}


def test_a_run_uses_one_version_even_while_the_definition_changes() -> None:
    pipeline = PipelineFactory(steps=[transform_step("v1")])
    ref_v1 = selectors.pipeline_ref(pipeline.slug)
    services.pipeline_update(pipeline, steps=[transform_step("v2")])
    # A run that resolved version 1 keeps running version 1; new runs see version 2.
    old = services.pipeline_run(ref_v1, prepare_packet({"payload": 1}))
    new = services.pipeline_run(selectors.pipeline_ref(pipeline.slug), prepare_packet({"payload": 1}))
    assert (old["pipeline_version"], old["packet"]["tags"]) == (1, ["v1"])
    assert (new["pipeline_version"], new["packet"]["tags"]) == (2, ["v2"])


def _only_writes(queries: list[dict]) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].split()[0].upper() in {"INSERT", "UPDATE", "DELETE"}]


def test_a_successful_sync_run_writes_nothing_and_a_failed_one_is_recorded(settings) -> None:  # type: ignore[no-untyped-def]
    settings.PIPELINE_STATS_FLUSH_SECONDS = 3600
    pipeline = PipelineFactory(
        steps=[
            {
                "name": "check",
                "kind": "validate",
                "config": {"rules": [{"path": "payload.n", "kind": "range", "params": {"min": 0}}]},
            }
        ]
    )
    ref = selectors.pipeline_ref(pipeline.slug)
    accumulator.drain()
    with CaptureQueriesContext(connection) as queries:
        for n in range(20):
            assert services.pipeline_run(ref, prepare_packet({"payload": {"n": n}}))["status"] == "succeeded"
    assert _only_writes(queries.captured_queries) == []
    assert not Run.objects.exists()
    failed = services.pipeline_run(ref, prepare_packet({"id": "p1", "payload": {"n": -1}}))
    run = Run.objects.get(pk=failed["run_id"])
    assert run.status == "failed" and run.input["id"] == "p1" and "payload.n" in run.error
    recorded = services.pipeline_run(ref, prepare_packet({"payload": {"n": 1}}), record=True)
    assert Run.objects.get(pk=recorded["run_id"]).status == "succeeded"


def test_run_failed_events_are_rate_limited() -> None:
    pipeline = PipelineFactory(
        steps=[{"name": "f", "kind": "transform", "config": {"operations": [{"op": "upper", "path": "payload"}]}}]
    )
    ref = selectors.pipeline_ref(pipeline.slug)
    for _ in range(5):
        services.pipeline_run(ref, prepare_packet({"payload": 1}))
    services.pipeline_run_batch(ref, [prepare_packet({"payload": 1}) for _ in range(10)])
    assert Run.objects.filter(status="failed").count() == 15
    events = Event.objects.filter(kind="pipeline.run_failed")
    assert events.count() == 1
    assert events.get().subject == pipeline.slug and "not a string" in events.get().data["error"]


def test_stats_are_folded_into_the_database_per_flush_not_per_packet() -> None:
    pipeline = PipelineFactory(
        steps=[
            {"name": "gate", "kind": "filter", "priority": 1, "config": {"when": "payload == `0`"}},
            {
                "name": "big",
                "kind": "transform",
                "priority": 2,
                "condition": "payload > `5`",
                "config": {"operations": [{"op": "add_tag", "value": "big"}]},
            },
        ]
    )
    ref = selectors.pipeline_ref(pipeline.slug)
    services.pipeline_run_batch(ref, [prepare_packet({"payload": n}) for n in (0, 1, 9, 10)])
    stats_flush(force=True)
    rows = {row.step: row for row in StepStats.objects.filter(pipeline=pipeline)}
    assert (rows[""].received, rows[""].sent, rows[""].dropped) == (4, 3, 1)
    assert (rows["gate"].received, rows["gate"].sent, rows["gate"].dropped) == (4, 3, 1)
    assert (rows["big"].received, rows["big"].sent, rows["big"].skipped) == (3, 3, 1)
    assert rows["big"].latency_count == 2 and sum(rows["big"].latency_buckets) == 2
    metrics = selectors.pipeline_metrics(pipeline)
    assert metrics["totals"]["received"] == 4
    assert [s["step"] for s in metrics["steps"]] == ["gate", "big"]


def test_demo_data_loads_once_and_runs() -> None:
    from pipelines.demo import load_demo

    assert load_demo() == ["demo-audit", "demo-orders"]
    assert load_demo() == []
    ref = selectors.pipeline_ref("demo-orders")
    body = services.pipeline_run(
        ref, prepare_packet({"payload": {"customer": " ann ", "currency": "eur", "qty": "3", "price": 500}})
    )
    assert body["status"] == "succeeded" and body["routes"] == ["fast", "pipeline:demo-audit"]
    assert body["chained"][0]["packet"]["metadata"]["audited"] is True
    kinds = set(Step.objects.values_list("kind", flat=True))
    assert kinds == {"transform", "validate", "route", "filter", "enrich"}


def test_periodic_tasks_are_created_once_by_migrate() -> None:
    from django_celery_beat.models import PeriodicTask

    tasks = dict(PeriodicTask.objects.filter(name__startswith="pipelines:").values_list("name", "task"))
    assert tasks == {
        "pipelines: prune runs": "pipelines.runs_prune",
        "pipelines: recover lost async runs": "pipelines.runs_recover",
    }
    # Deliveries of every kind are swept by the one engine's task (controlplane/delivery).
    sweeps = dict(PeriodicTask.objects.filter(task__endswith="deliveries_sweep").values_list("name", "task"))
    assert sweeps == {"deliveries: send due deliveries": "controlplane.delivery.deliveries_sweep"}


def test_the_step_limit_applies(settings) -> None:  # type: ignore[no-untyped-def]
    settings.PIPELINE_MAX_STEPS = 2
    with pytest.raises(ValidationError) as caught:
        services.pipeline_create(slug="long", name="Long", steps=[transform_step(f"s{i}") for i in range(3)])
    assert caught.value.message_dict["steps"] == ["At most 2 steps."]


def test_due_deliveries_and_pruning() -> None:
    from datetime import timedelta

    from django.utils import timezone

    from pipelines.models import Delivery

    pipeline = PipelineFactory(
        steps=[{"name": "r", "kind": "route", "config": {"rules": [{"when": "`true`", "to": {"service": "svc"}}]}}]
    )
    ref = selectors.pipeline_ref(pipeline.slug)
    body = services.pipeline_run(ref, prepare_packet({"payload": 1}))
    assert selectors.deliveries_due() == body["deliveries"]
    Delivery.objects.update(next_attempt_at=timezone.now() + timedelta(minutes=5))
    assert selectors.deliveries_due() == []
    services.pipeline_run(ref, prepare_packet({"payload": 1}), record=True)
    old = timezone.now() - timedelta(days=30)
    Run.objects.update(created_at=old)
    Delivery.objects.update(created_at=old, status="delivered")
    assert services.runs_prune() == 1
    assert not Run.objects.exists() and not Delivery.objects.exists()


def test_a_run_that_keeps_losing_its_worker_is_failed_with_the_reason(monkeypatch, settings) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from django.utils import timezone

    queued: list[list[int]] = []
    monkeypatch.setattr("pipelines.services.runs._queue", queued.append)  # the broker is not under test here
    settings.PIPELINE_RUN_MAX_ATTEMPTS = 3
    pipeline = PipelineFactory(slug="crashy")
    now, old = timezone.now(), timezone.now() - timedelta(hours=1)

    def run(status: str, attempts: int = 0, **times) -> Run:  # type: ignore[no-untyped-def]
        created = Run.objects.create(pipeline=pipeline, version=1, mode="async", status=status, input={})
        Run.objects.filter(pk=created.pk).update(attempts=attempts, **times)
        return created

    doomed = run("running", 3, started_at=old, queued_at=old)
    retried = run("running", 1, started_at=old, queued_at=old)
    busy = run("running", 1, started_at=now, queued_at=old)  # within its time: left alone
    waiting = run("pending", queued_at=now)  # message just sent: not copied
    lost = run("pending", queued_at=old)  # message sent an hour ago and never claimed

    assert services.runs_recover() == {"stalled": 1, "queued": 2, "failed": 1}
    doomed.refresh_from_db()
    assert doomed.status == "failed" and "stopped 3 times" in doomed.error and doomed.finished_at
    assert Run.objects.get(pk=retried.pk).status == "pending" and sorted(queued[0]) == sorted([retried.pk, lost.pk])
    assert Run.objects.get(pk=busy.pk).status == "running" and Run.objects.get(pk=waiting.pk).queued_at == now
    event = Event.objects.get(kind="pipeline.run_failed")
    assert event.subject == "crashy" and event.data["run_id"] == doomed.pk
    # The copies are stamped: the next sweep sends none until the period has passed again.
    assert services.runs_recover() == {"stalled": 0, "queued": 0, "failed": 0} and len(queued) == 1
