"""The pipeline API: CRUD with ordered steps, run/batch/dry run, metrics, runs, and every bad-input case."""

from __future__ import annotations

import json

import pytest

from controlplane.events.models import Event
from pipelines.models import Delivery, Pipeline, Run
from tests.conftest import key_client
from tests.pipelines.factories import PipelineFactory, transform_step

pytestmark = pytest.mark.django_db

STEPS = [
    {
        "name": "total",
        "kind": "transform",
        "priority": 10,
        "config": {
            "operations": [{"op": "set", "path": "payload.total", "expr": "multiply(payload.price, payload.qty)"}]
        },
    },
    {
        "name": "check",
        "kind": "validate",
        "priority": 20,
        "config": {"rules": [{"path": "payload.total", "kind": "range", "params": {"min": 0}}]},
    },
    {"name": "zero", "kind": "filter", "priority": 30, "config": {"when": "payload.total == `0`"}},
    {
        "name": "route",
        "kind": "route",
        "priority": 40,
        "config": {"rules": [{"when": "payload.total > `100`", "to": "big"}], "default": "small"},
    },
]


@pytest.fixture
def writer():  # type: ignore[no-untyped-def]
    return key_client("pipelines:read", "pipelines:write")


@pytest.fixture
def runner():  # type: ignore[no-untyped-def]
    return key_client("pipelines:run", "pipelines:read")


def post_json(client, url: str, body: object):  # type: ignore[no-untyped-def]
    return client.post(url, data=json.dumps(body), content_type="application/json")


def test_create_read_update_delete(writer) -> None:  # type: ignore[no-untyped-def]
    created = post_json(writer, "/api/v1/pipelines/", {"slug": "orders", "name": "Orders", "steps": STEPS[::-1]})
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["version"] == 1 and [s["name"] for s in body["steps"]] == ["total", "check", "zero", "route"]
    assert writer.get("/api/v1/pipelines/").json()["results"][0]["slug"] == "orders"
    patched = writer.patch(
        "/api/v1/pipelines/orders/", data={"description": "d", "error_policy": "continue"}, format="json"
    )
    assert patched.status_code == 200 and patched.json()["version"] == 2
    assert [s["name"] for s in patched.json()["steps"]] == ["total", "check", "zero", "route"], (
        "PATCH without steps keeps them"
    )
    replaced = writer.put(
        "/api/v1/pipelines/orders/", data={"slug": "orders", "name": "Orders", "steps": STEPS[:1]}, format="json"
    )
    assert replaced.status_code == 200 and [s["name"] for s in replaced.json()["steps"]] == ["total"]
    assert replaced.json()["error_policy"] == "stop" and replaced.json()["version"] == 3
    assert writer.delete("/api/v1/pipelines/orders/").status_code == 204
    assert writer.get("/api/v1/pipelines/orders/").status_code == 404
    assert list(
        Event.objects.filter(kind="pipeline.changed").values_list("data__action", flat=True).order_by("id")
    ) == ["created", "updated", "updated", "deleted"]


@pytest.mark.parametrize(
    ("steps", "field", "fragment"),
    [
        ([{"name": "a", "kind": "teleport", "config": {}}], "steps.0.kind", "unknown kind"),
        ([{"name": "a", "kind": "filter", "config": {"when": "x[["}}], "steps.0.config", "Invalid JMESPath"),
        ([{"name": "a", "kind": "filter", "config": {"when": "payload.a * > `1`"}}], "steps.0.config", "operand"),
        (
            [{"name": "a", "kind": "filter", "condition": "(", "config": {"when": "x"}}],
            "steps.0.condition",
            "Invalid JMESPath",
        ),
        (
            [{"name": "a", "kind": "route", "config": {"rules": [{"when": "x"}]}}],
            "steps.0.config",
            "'to' is a required property",
        ),
        ([transform_step("a"), transform_step("a")], "steps.1.name", "duplicate step name"),
    ],
)
def test_invalid_definitions_are_400_with_the_step_named_and_nothing_saved(writer, steps, field, fragment) -> None:  # type: ignore[no-untyped-def]
    response = post_json(writer, "/api/v1/pipelines/", {"slug": "bad", "name": "Bad", "steps": steps})
    assert response.status_code == 400 and response["Content-Type"] == "application/problem+json"
    errors = response.json()["errors"]
    assert any(fragment in m and "step 'a'" in m for m in errors[field]), errors
    assert not Pipeline.objects.exists()


def test_an_invalid_update_leaves_the_pipeline_as_it_was(writer) -> None:  # type: ignore[no-untyped-def]
    PipelineFactory(slug="keep", steps=[transform_step("a")])
    response = writer.patch(
        "/api/v1/pipelines/keep/", data={"name": "new", "steps": [{"name": "a", "kind": "nope"}]}, format="json"
    )
    assert response.status_code == 400 and "steps.0.kind" in response.json()["errors"]
    pipeline = Pipeline.objects.get(slug="keep")
    assert (pipeline.version, pipeline.name, pipeline.steps.get().kind) == (1, "Pipeline keep", "transform")


def test_sync_run_answers_status_packet_routes_and_trace(runner) -> None:  # type: ignore[no-untyped-def]
    PipelineFactory(slug="orders", steps=STEPS)
    response = post_json(runner, "/api/v1/pipelines/orders/run/", {"id": "p-1", "payload": {"price": 30, "qty": 4}})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "succeeded" and body["routes"] == ["big"] and body["pipeline_version"] == 1
    assert body["packet"] == {"id": "p-1", "payload": {"price": 30, "qty": 4, "total": 120}, "metadata": {}, "tags": []}
    assert [(t["step"], t["ran"], t["error"]) for t in body["trace"]] == [
        ("total", True, None),
        ("check", True, None),
        ("zero", True, None),
        ("route", True, None),
    ]
    assert all(t["duration_ms"] >= 0 for t in body["trace"])
    dropped = post_json(runner, "/api/v1/pipelines/orders/run/", {"payload": {"price": 30, "qty": 0}}).json()
    assert dropped["status"] == "dropped" and dropped["routes"] == []
    failed = post_json(runner, "/api/v1/pipelines/orders/run/", {"payload": {"price": -1, "qty": 4}})
    assert failed.status_code == 200 and failed.json()["status"] == "failed" and "check" in failed.json()["error"]
    assert Run.objects.get(pk=failed.json()["run_id"]).status == "failed"


def test_recorded_runs_are_listed_and_readable(runner) -> None:  # type: ignore[no-untyped-def]
    PipelineFactory(slug="orders", steps=STEPS)
    body = post_json(runner, "/api/v1/pipelines/orders/run/?record=true", {"payload": {"price": 1, "qty": 1}}).json()
    run = runner.get(f"/api/v1/runs/{body['run_id']}/").json()
    assert run["status"] == "succeeded" and run["routes"] == ["small"] and run["pipeline"] == "orders"
    assert run["input"]["payload"] == {"price": 1, "qty": 1} and run["output"]["payload"]["total"] == 1
    assert runner.get("/api/v1/pipelines/orders/runs/").json()["results"][0]["id"] == body["run_id"]
    assert runner.get("/api/v1/runs/999999/").status_code == 404


def test_batch_returns_a_result_per_packet(runner) -> None:  # type: ignore[no-untyped-def]
    PipelineFactory(slug="orders", steps=STEPS)
    packets = [{"payload": {"price": p, "qty": 2}} for p in (100, 1, 0, -5)]
    response = post_json(runner, "/api/v1/pipelines/orders/batch/", {"packets": packets})
    assert response.status_code == 200
    body = response.json()
    assert [r["status"] for r in body["results"]] == ["succeeded", "succeeded", "dropped", "failed"]
    assert [r["routes"] for r in body["results"][:2]] == [["big"], ["small"]]
    assert body["summary"] == {"succeeded": 2, "failed": 1, "dropped": 1}
    assert "trace" not in body["results"][0]
    assert "run_id" in body["results"][3]
    bare = post_json(runner, "/api/v1/pipelines/orders/batch/?trace=true", packets[:1]).json()
    assert len(bare["results"][0]["trace"]) == 4


def test_metrics_endpoint_reports_per_step_counters(runner) -> None:  # type: ignore[no-untyped-def]
    PipelineFactory(slug="orders", steps=STEPS)
    post_json(runner, "/api/v1/pipelines/orders/batch/", [{"payload": {"price": p, "qty": 1}} for p in (5, 0, -1, 500)])
    body = runner.get("/api/v1/pipelines/orders/metrics/").json()
    assert (
        body["totals"]["received"],
        body["totals"]["sent"],
        body["totals"]["dropped"],
        body["totals"]["errors"],
    ) == (4, 2, 1, 1)
    steps = {s["step"]: s for s in body["steps"]}
    assert (steps["check"]["received"], steps["check"]["errors"], steps["check"]["sent"]) == (4, 1, 3)
    assert (steps["zero"]["received"], steps["zero"]["dropped"]) == (3, 1)
    assert steps["route"]["received"] == 2 and steps["route"]["latency_ms"]["count"] == 2
    prometheus = key_client("admin").get("/metrics").content.decode()
    assert 'controlplane_pipeline_step_packets_total{outcome="dropped",pipeline="orders",step="zero"} 1.0' in prometheus
    assert 'controlplane_pipeline_packets_total{outcome="received",pipeline="orders"} 4.0' in prometheus
    assert 'controlplane_pipeline_step_duration_seconds_count{pipeline="orders",step="route"} 2.0' in prometheus


def test_dry_run_shows_before_and_after_and_keeps_nothing(runner, scripted_receiver) -> None:  # type: ignore[no-untyped-def]
    receiver = scripted_receiver([200])
    from tests.pipelines.conftest import register_service

    register_service("billing", receiver.port)
    steps = STEPS[:1] + [
        {"name": "send", "kind": "route", "config": {"rules": [{"when": "`true`", "to": {"service": "billing"}}]}}
    ]
    PipelineFactory(slug="orders", steps=steps)
    body = post_json(runner, "/api/v1/pipelines/orders/dry-run/", {"payload": {"price": 2, "qty": 3, "x": "y"}}).json()
    assert body["routes"] == ["service:billing"]
    assert body["trace"][0]["before"]["payload"] == {"price": 2, "qty": 3, "x": "y"}
    assert body["trace"][0]["after"]["payload"]["total"] == 6
    assert not Run.objects.exists() and not Delivery.objects.exists()
    assert runner.get("/api/v1/pipelines/orders/metrics/").json()["totals"]["received"] == 0
    assert receiver.requests == []


def test_scopes_are_enforced() -> None:
    PipelineFactory(slug="orders", steps=STEPS)
    reader = key_client("pipelines:read")
    assert reader.get("/api/v1/pipelines/orders/").status_code == 200
    assert post_json(reader, "/api/v1/pipelines/orders/run/", {"payload": 1}).status_code == 403
    assert post_json(reader, "/api/v1/pipelines/", {"slug": "x", "name": "x"}).status_code == 403
    assert key_client("pipelines:run").get("/api/v1/pipelines/").status_code == 403
    assert post_json(key_client("pipelines:run"), "/api/v1/pipelines/orders/run/", {"payload": 1}).status_code == 200


def test_a_namespace_restricted_key_may_not_enrich_from_other_namespaces() -> None:
    client = key_client("pipelines:write", "config:read", namespaces=["shop"])
    enrich = {"name": "e", "kind": "enrich", "config": {"path": "payload.k", "namespace": "payroll", "key": "salary"}}
    response = post_json(client, "/api/v1/pipelines/", {"slug": "p", "name": "P", "steps": [enrich]})
    assert response.status_code == 400 and "payroll" in response.json()["errors"]["steps.0.config"][0]
    enrich["config"]["namespace"] = "shop"
    assert post_json(client, "/api/v1/pipelines/", {"slug": "p", "name": "P", "steps": [enrich]}).status_code == 201


# --- bad input: 400/413/404/409 problem+json, never a 500, nothing changed -----------------------------


def _problem(response, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    return response.json()


def test_bad_run_input(runner, settings) -> None:  # type: ignore[no-untyped-def]
    settings.PIPELINE_MAX_PACKET_BYTES = 2048
    PipelineFactory(slug="orders", steps=STEPS)
    url = "/api/v1/pipelines/orders/run/"
    _problem(runner.post(url, data="{not json", content_type="application/json"), 400)
    _problem(runner.post(url, data="", content_type="application/json"), 400)
    _problem(post_json(runner, url, {"payload": "x" * 3000}), 413)
    deep: object = 1
    for _ in range(100):
        deep = [deep]
    assert "deeper" in _problem(post_json(runner, url, {"payload": deep}), 400)["detail"]
    assert "tags" in _problem(post_json(runner, url, {"payload": 1, "tags": "a"}), 400)["errors"]
    assert "non_field_errors" in _problem(post_json(runner, url, [1]), 400)["errors"]
    _problem(post_json(runner, "/api/v1/pipelines/nope/run/", {"payload": 1}), 404)
    Pipeline.objects.filter(slug="orders").update(enabled=False)
    assert "disabled" in _problem(post_json(runner, url, {"payload": 1}), 409)["detail"]
    assert not Run.objects.exists()


def test_bad_batch_input(runner, settings) -> None:  # type: ignore[no-untyped-def]
    settings.PIPELINE_MAX_PACKET_BYTES = 2048
    PipelineFactory(slug="orders", steps=STEPS)
    url = "/api/v1/pipelines/orders/batch/"
    assert "1000" in _problem(post_json(runner, url, [{"payload": 1}] * 1001), 413)["detail"]
    assert "Packet 1" in _problem(post_json(runner, url, [{"payload": 1}, {"payload": "x" * 3000}]), 413)["detail"]
    assert (
        "packets.1.metadata"
        in _problem(post_json(runner, url, [{"payload": 1}, {"payload": 1, "metadata": 3}]), 400)["errors"]
    )
    _problem(post_json(runner, url, {"packets": "nope"}), 400)
    _problem(post_json(runner, url, []), 400)
    _problem(runner.post(url, data="[{]", content_type="application/json"), 400)
    _problem(post_json(runner, "/api/v1/pipelines/nope/batch/", [{"payload": 1}]), 404)
    assert post_json(runner, url, [{"payload": {"price": 1, "qty": 1}}] * 1000).json()["summary"]["succeeded"] == 1000
    Pipeline.objects.filter(slug="orders").update(enabled=False)
    assert "disabled" in _problem(post_json(runner, url, [{"payload": 1}]), 409)["detail"]
    assert not Run.objects.exists()


def test_a_step_with_a_bug_fails_the_packet_and_the_api_still_answers(runner, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from pipelines.steps import STEP_KINDS
    from tests.pipelines.test_executor import ExplodingStep

    monkeypatch.setitem(STEP_KINDS, "exploding", ExplodingStep)
    PipelineFactory(slug="buggy", steps=[{"name": "bug", "kind": "exploding", "config": {}}])
    response = post_json(runner, "/api/v1/pipelines/buggy/run/", {"payload": 1})
    assert response.status_code == 200
    assert response.json()["status"] == "failed" and response.json()["error"] == "step 'bug' failed: KeyError: 'boom'"
