"""Run budgets (issue #10 point 3): packet size after every step, chained runs, recorded failures, wall clock,
integer size. Over budget the run fails naming the step and the budget (422 problem+json for sync and batch, a
failed run and `pipeline.run_failed` for async), and nothing is delivered — not even what other links or
other packets of the same request routed to a service.
"""

from __future__ import annotations

import json

import pytest

from controlplane.events.models import Event
from pipelines.budget import Budget
from pipelines.executor import compile_pipeline, prepare_packet
from pipelines.models import Delivery, Run
from pipelines.services import run_execute
from tests.conftest import key_client
from tests.pipelines.factories import PipelineFactory

pytestmark = pytest.mark.django_db

DELIVER = {
    "name": "deliver",
    "kind": "route",
    "priority": 1000,
    "config": {"mode": "all", "rules": [{"when": "`true`", "to": {"service": "billing"}}]},
}


def ops(*operations: dict, name: str = "grow", priority: int = 100) -> dict:
    return {"name": name, "kind": "transform", "priority": priority, "config": {"operations": list(operations)}}


def doubling(count: int = 19) -> dict:
    return ops(*[{"op": "set", "path": "payload.s", "expr": "concat(payload.s, payload.s)"}] * count, name="double")


# Several ways of growing a packet inside one step; each would reach hundreds of MB unchecked.
GROWTH = {
    "concat": doubling(),
    "copy": ops(*[{"op": "copy", "path": "payload", "to": f"payload.c{i}"} for i in range(19)]),
    "format": ops(*[{"op": "format", "path": "payload.s", "template": "{payload.s}{payload.s}"}] * 19),
    "replace": ops({"op": "replace", "path": "payload.s", "old": "x", "new": "y" * 2000}),
    "json_dump": ops(*[{"op": "json_dump", "path": "payload.s"}] * 40),
    "map": ops(*[{"op": "map", "expr": "{a: @, b: @}"}] * 19),
    "many-steps": None,  # one doubling per step, 19 steps
}


def growth_steps(kind: str) -> list[dict]:
    if kind == "many-steps":
        return [doubling(1) | {"name": f"double-{i}", "priority": i} for i in range(19)]
    return [GROWTH[kind]]


def post(client, url: str, body) -> object:  # type: ignore[no-untyped-def]
    return client.post(url, data=json.dumps(body), content_type="application/json")


def over_budget(response, budget: str) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == 422, response.content[:2000]
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["budget"] == budget and budget in problem["detail"]
    return problem


@pytest.fixture
def runner():  # type: ignore[no-untyped-def]
    return key_client("pipelines:run")


# --- packet size after every step ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(GROWTH))
def test_a_packet_growing_past_the_limit_fails_the_run_and_delivers_nothing(runner, kind) -> None:  # type: ignore[no-untyped-def]
    PipelineFactory(slug="grow", steps=[*growth_steps(kind), DELIVER])
    payload = {"s": "x" * 1000}
    problem = over_budget(post(runner, "/api/v1/pipelines/grow/run/", {"payload": payload}), "packet_bytes")
    assert problem["pipeline"] == "grow" and problem["step"].startswith(("grow", "double"))
    assert problem["step"] in problem["detail"]
    assert len(json.dumps(problem)) < 10_000  # the answer does not carry the packet
    assert Delivery.objects.count() == 0
    run = Run.objects.get()
    assert run.pk == problem["run_id"] and run.status == "failed" and run.output is None
    assert "packet_bytes" in run.error and run.input["payload"] == payload
    assert Event.objects.filter(kind="pipeline.run_failed", subject="grow").count() == 1


def test_a_packet_within_the_limit_is_delivered(runner) -> None:  # type: ignore[no-untyped-def]
    """The control: the same pipeline on a small enough packet passes and delivers."""
    PipelineFactory(slug="grow", steps=[doubling(17), DELIVER])
    response = post(runner, "/api/v1/pipelines/grow/run/", {"payload": {"s": "x"}})
    assert response.status_code == 200 and len(response.json()["packet"]["payload"]["s"]) == 2**17
    assert Delivery.objects.count() == 1


def test_the_limit_holds_after_every_step_when_the_step_fails_softly(runner, settings) -> None:  # type: ignore[no-untyped-def]
    """`on_error: skip` and `error_policy: continue` do not skip a budget."""
    settings.PIPELINE_MAX_PACKET_BYTES = 4096
    PipelineFactory(slug="grow", error_policy="continue", steps=[doubling() | {"on_error": "skip"}, DELIVER])
    over_budget(post(runner, "/api/v1/pipelines/grow/run/", {"payload": {"s": "x" * 100}}), "packet_bytes")
    assert Delivery.objects.count() == 0


def test_a_batch_with_one_packet_over_budget_delivers_nothing(runner) -> None:  # type: ignore[no-untyped-def]
    PipelineFactory(slug="grow", steps=[doubling(10), DELIVER])
    packets = [{"payload": {"s": "x"}}] * 3 + [{"payload": {"s": "x" * 1000}}]
    problem = over_budget(post(runner, "/api/v1/pipelines/grow/batch/", packets), "packet_bytes")
    assert problem["step"] == "double" and Delivery.objects.count() == 0
    assert Run.objects.get().mode == "batch"


def test_an_async_run_over_budget_fails_with_the_reason_and_an_event(runner) -> None:  # type: ignore[no-untyped-def]
    PipelineFactory(slug="grow", steps=[doubling(), DELIVER])
    accepted = post(runner, "/api/v1/pipelines/grow/run/?async=true", {"payload": {"s": "x" * 1000}})
    assert accepted.status_code == 202
    assert run_execute(run_id=accepted.json()["run_id"]) == "failed"
    run = Run.objects.get()
    assert run.status == "failed" and "packet_bytes" in run.error and "'double'" in run.error
    assert run.output is None and Delivery.objects.count() == 0
    assert Event.objects.filter(kind="pipeline.run_failed", subject="grow").exists()
    assert runner.get(f"/api/v1/runs/{run.pk}/").json()["status"] == "failed"


def test_the_executor_checks_the_size_of_every_growing_operation() -> None:
    """Pure executor, no database: each growth operation stops at the limit, with the budget named."""
    budget = Budget(max_packet_bytes=8192).start()
    for kind in GROWTH:
        definition = {"id": 1, "slug": "t", "version": 1, "steps": growth_steps(kind)}
        result = compile_pipeline(definition).run(prepare_packet({"payload": {"s": "x" * 1000}}), budget=budget)
        assert (result.status, result.budget) == ("failed", "packet_bytes"), (kind, result.error)
        assert "packet_bytes budget (8192 bytes)" in result.error
    # Without a budget nothing is measured (the pure executor as the benchmark runs it).
    unbounded = compile_pipeline({"id": 1, "steps": [doubling(14)]}).run(prepare_packet({"payload": {"s": "x"}}))
    assert unbounded.status == "succeeded" and unbounded.size is None


# --- chained runs -------------------------------------------------------------------------------------


def ten_pipelines_routing_to_each_other() -> None:
    rules = [{"when": "`true`", "to": {"pipeline": f"p{j}"}} for j in range(10)]
    for i in range(10):
        route = {"name": "fan-out", "kind": "route", "config": {"mode": "all", "rules": rules}}
        PipelineFactory(slug=f"p{i}", steps=[DELIVER | {"priority": 1}, route])


def test_ten_pipelines_routing_to_each_other_stop_at_the_chained_runs_budget(runner, settings) -> None:  # type: ignore[no-untyped-def]
    settings.PIPELINE_MAX_CHAIN_DEPTH = 10  # depth alone would allow 10**9 runs
    ten_pipelines_routing_to_each_other()
    problem = over_budget(post(runner, "/api/v1/pipelines/p0/run/", {"payload": {}}), "chained_runs")
    assert problem["limit"] == "32 chained runs" and "route 'pipeline:" in problem["detail"]
    assert Run.objects.count() == 1 and Delivery.objects.count() == 0

    batch = post(runner, "/api/v1/pipelines/p0/batch/", [{"payload": {}}] * 5)
    over_budget(batch, "chained_runs")
    assert Run.objects.count() == 2 and Delivery.objects.count() == 0

    accepted = post(runner, "/api/v1/pipelines/p0/run/?async=true", {"payload": {}})
    assert run_execute(run_id=accepted.json()["run_id"]) == "failed"
    assert "chained_runs" in Run.objects.get(pk=accepted.json()["run_id"]).error
    assert Run.objects.count() == 3 and Delivery.objects.count() == 0


def test_a_chain_within_budget_delivers_from_every_link(runner) -> None:  # type: ignore[no-untyped-def]
    PipelineFactory(slug="last", steps=[DELIVER])
    PipelineFactory(
        slug="first",
        steps=[DELIVER, {"name": "next", "kind": "route", "config": {"rules": [], "default": {"pipeline": "last"}}}],
    )
    assert post(runner, "/api/v1/pipelines/first/run/", {"payload": {}}).status_code == 200
    assert Delivery.objects.count() == 2


# --- recorded failures and wall clock -----------------------------------------------------------------


def test_a_request_recording_too_many_failures_records_one(runner, settings) -> None:  # type: ignore[no-untyped-def]
    settings.PIPELINE_MAX_RECORDED_FAILURES = 3
    PipelineFactory(slug="strict", steps=[ops({"op": "cast", "path": "payload.n", "type": "int"}, name="n"), DELIVER])
    bad, good = {"payload": {"n": "not a number"}}, {"payload": {"n": "1"}}
    ok = post(runner, "/api/v1/pipelines/strict/batch/", [bad] * 3 + [good])
    assert ok.status_code == 200 and ok.json()["summary"]["failed"] == 3 and Delivery.objects.count() == 1
    problem = over_budget(post(runner, "/api/v1/pipelines/strict/batch/", [bad] * 4 + [good]), "recorded_failures")
    assert "4 failed runs" in problem["detail"]
    assert Run.objects.count() == 3 + 1 and Delivery.objects.count() == 1


def test_a_run_past_its_wall_clock_budget_fails_naming_the_step(runner, settings) -> None:  # type: ignore[no-untyped-def]
    settings.PIPELINE_RUN_MAX_SECONDS = 1e-9  # over as soon as the first step has run
    PipelineFactory(slug="slow", steps=[ops({"op": "add_tag", "value": "a"}, name="first"), DELIVER])
    for url, body in (("run/", {"payload": {}}), ("batch/", [{"payload": {}}] * 2)):
        problem = over_budget(post(runner, f"/api/v1/pipelines/slow/{url}", body), "run_seconds")
        assert problem["step"] == "first"
    assert Delivery.objects.count() == 0


# --- integers -----------------------------------------------------------------------------------------


SQUARE = {"op": "set", "path": "payload.n", "expr": "payload.n * payload.n"}


def test_an_integer_squared_again_and_again_fails_cleanly(runner) -> None:  # type: ignore[no-untyped-def]
    """The expressions module's digit cap fails the step, in an operation or a condition: 422, not a 500."""
    PipelineFactory(slug="square", steps=[ops(*[SQUARE] * 8, name="square"), DELIVER])
    condition = {
        "name": "when",
        "kind": "transform",
        "condition": "payload.n * payload.n > `0`",
        "config": {"operations": [{"op": "add_tag", "value": "x"}]},
    }
    PipelineFactory(slug="condition", steps=[condition, DELIVER])
    body = '{"payload": {"n": %s}}' % ("9" * 101)  # noqa: UP031 - a number too long for json.dumps to write
    for slug, step in (("square", "square"), ("condition", "when")):
        response = runner.post(f"/api/v1/pipelines/{slug}/run/", data=body, content_type="application/json")
        assert over_budget(response, "expression_limits")["step"] == step
    assert Delivery.objects.count() == 0


def test_an_integer_too_long_to_write_out_fails_the_run_in_the_executor() -> None:
    """Whatever produced it (here a config value), an int past Python's int-to-string limit is over budget."""
    step = {"name": "cfg", "kind": "enrich", "config": {"path": "payload.n", "namespace": "ns", "key": "n"}}
    compiled = compile_pipeline({"id": 1, "steps": [step]})
    result = compiled.run(prepare_packet({"payload": {}}), lookup=lambda ns, key: 10**5000, budget=Budget().start())
    assert (result.status, result.budget) == ("failed", "packet_bytes") and "digits" in result.error


def test_a_dry_run_over_budget_answers_422_and_records_nothing(runner, client) -> None:  # type: ignore[no-untyped-def]
    from django.contrib.auth import get_user_model

    pipeline = PipelineFactory(slug="grow", steps=[doubling(), DELIVER])
    problem = over_budget(
        post(runner, "/api/v1/pipelines/grow/dry-run/", {"payload": {"s": "x" * 1000}}), "packet_bytes"
    )
    assert problem["step"] == "double" and problem["run_id"] is None and problem["limit"] == "262144 bytes"
    client.force_login(get_user_model().objects.create_superuser("ops", "ops@example.com", "pw-for-tests-only"))
    page = client.post(
        f"/admin/pipelines/pipeline/{pipeline.pk}/dry-run/", {"packet": json.dumps({"payload": {"s": "x" * 1000}})}
    ).content.decode()
    assert "packet_bytes budget" in page
    assert not Run.objects.exists() and Delivery.objects.count() == 0


@pytest.mark.parametrize(
    ("operation", "message"),
    [
        ({"op": "replace", "path": "payload.s", "old": "x", "new": "y" * 5000}, "the replaced text grows past"),
        ({"op": "format", "path": "payload.t", "template": "{payload.s}" * 500}, "the formatted text grows past"),
    ],
)
def test_one_operation_is_refused_before_it_builds_a_huge_string(operation, message) -> None:  # type: ignore[no-untyped-def]
    """100 KB x 5,000 or x 500 would be 500 MB / 50 MB: the size is known before the text is built."""
    compiled = compile_pipeline({"id": 1, "steps": [ops(operation)]})
    result = compiled.run(prepare_packet({"payload": {"s": "x" * 100_000}}), budget=Budget().start())
    assert (result.status, result.budget) == ("failed", "packet_bytes") and message in result.error
    assert len(result.packet["payload"]["s"]) == 100_000 and "t" not in result.packet["payload"]


def test_routes_to_missing_pipelines_count_as_chained_runs(runner) -> None:  # type: ignore[no-untyped-def]
    """Each refused route still costs copies of the packet: 200 routes to nothing stop at the budget."""
    rules = [{"when": "`true`", "to": {"pipeline": f"missing-{j}"}} for j in range(200)]
    PipelineFactory(
        slug="fan", steps=[DELIVER, {"name": "fan-out", "kind": "route", "config": {"mode": "all", "rules": rules}}]
    )
    problem = over_budget(post(runner, "/api/v1/pipelines/fan/run/", {"payload": {"s": "x" * 1000}}), "chained_runs")
    assert "missing-32" in problem["detail"] and Delivery.objects.count() == 0


# --- values an expression builds ----------------------------------------------------------------------

# Each stage doubles a value whose halves are one shared object: free to build, 2**n to copy, serialize or
# compare. 19 stages (a million leaves) stay safe to run without the guard (the packet budget then trips
# after seconds of copying, naming packet_bytes); 60 stages would exhaust the machine's memory.
SHARED_GROWTH = {
    "list": ("[payload.x, payload.x]" + " | [@, @]" * 19, "set"),
    "hash": ("{a: payload.x, b: payload.x}" + " | {a: @, b: @}" * 19, "set"),
    "string": ("concat(payload.s, payload.s)" + " | concat(@, @)" * 19, "set"),
    "projection": ("payload.l[*].[@, @, @, @]" + " | [*].[@, @, @, @]" * 9, "set"),
    "map": ("to_array(payload.x)" + " | map(&[@, @], @)" * 19, "set"),
    "flatten": ("[payload.l, payload.l]" + " | [@, @][]" * 19, "set"),
    "condition": (
        "([payload.x, payload.x]" + " | [@, @]" * 30 + ") == ([payload.x, payload.x]" + " | [@, @]" * 30 + ")",
        "when",
    ),
}


@pytest.mark.parametrize("kind", list(SHARED_GROWTH))
def test_an_expression_cannot_build_a_value_larger_than_a_packet(runner, kind) -> None:  # type: ignore[no-untyped-def]
    """Refused while it is built (422 naming the packet budget, at once), whether set or only compared."""
    import time

    expr, use = SHARED_GROWTH[kind]
    if use == "set":
        step = ops({"op": "set", "path": "payload.y", "expr": expr})
    else:
        step = {"name": "grow", "kind": "filter", "priority": 100, "config": {"when": expr}}
    PipelineFactory(slug="shared", steps=[step, DELIVER])
    started = time.monotonic()
    response = post(
        runner, "/api/v1/pipelines/shared/run/", {"payload": {"x": 1, "s": "abcdefghij", "l": list(range(20))}}
    )
    problem = over_budget(response, "packet_bytes")
    assert time.monotonic() - started < 2
    assert "went over its limits" in problem["detail"]  # refused by the expression, not after copying
    assert problem["step"] == "grow" and "bytes" in problem["detail"]
    assert Delivery.objects.count() == 0


def test_an_expression_building_a_value_that_fits_still_works(runner) -> None:  # type: ignore[no-untyped-def]
    """The control: shared halves are counted as the packet would hold them, and 2**12 leaves fit."""
    PipelineFactory(
        slug="shared",
        steps=[ops({"op": "set", "path": "payload.y", "expr": "[payload.x, payload.x]" + " | [@, @]" * 11})],
    )
    response = post(runner, "/api/v1/pipelines/shared/run/", {"payload": {"x": 1}})
    assert response.status_code == 200
    assert json.dumps(response.json()["packet"]["payload"]["y"]).count("1") == 2**12


LONG_SUM_LIST = "[" + ", ".join(["payload.a + payload.b"] * 2000) + "]"  # 48 KB; compiling grows faster than its length


@pytest.mark.parametrize(
    "step",
    [
        ops({"op": "set", "path": "payload.y", "expr": LONG_SUM_LIST}),
        {"name": "grow", "kind": "filter", "priority": 100, "config": {"when": LONG_SUM_LIST}},
        {
            "name": "grow",
            "kind": "transform",
            "priority": 100,
            "condition": LONG_SUM_LIST,
            "config": {"operations": []},
        },
        {"name": "grow", "kind": "route", "priority": 100, "config": {"rules": [{"when": LONG_SUM_LIST, "to": "x"}]}},
    ],
)
def test_an_overlong_expression_is_refused_when_the_definition_is_saved(step) -> None:  # type: ignore[no-untyped-def]
    import time

    from pipelines.models import Pipeline

    writer = key_client("pipelines:write")
    started = time.monotonic()
    response = post(writer, "/api/v1/pipelines/", {"slug": "long", "name": "long", "steps": [step]})
    assert response.status_code == 400, response.content[:500]
    assert "characters" in json.dumps(response.json()["errors"])  # the condition field has its own, shorter cap
    assert time.monotonic() - started < 2 and not Pipeline.objects.filter(slug="long").exists()


# --- values no packet may carry, made inside a run ------------------------------------------------------
# The input boundary refuses NUL and 1e999 in request bodies, but a step could make them: json_parse of a
# string holding the escape, cast to float, to_number, a JMESPath literal. A sync run then answered 500
# (no JSON form for infinity) and an async run stayed `running` (PostgreSQL refuses NUL in jsonb).

MADE_INSIDE = {
    "json_parse NUL": ({"op": "json_parse", "path": "payload.r"}, '{"a": "\\u0000"}'),
    "json_parse NUL key": ({"op": "json_parse", "path": "payload.r"}, '{"\\u0000": 1}'),
    "json_parse infinity": ({"op": "json_parse", "path": "payload.r"}, "1e999"),
    "json_parse NaN": ({"op": "json_parse", "path": "payload.r"}, "NaN"),
    "cast infinity": ({"op": "cast", "path": "payload.r", "type": "float"}, "1e999"),
    "cast nan": ({"op": "cast", "path": "payload.r", "type": "float"}, "nan"),
}


@pytest.mark.parametrize("name", list(MADE_INSIDE))
def test_a_step_cannot_put_nul_or_non_finite_numbers_in_a_packet(runner, name) -> None:  # type: ignore[no-untyped-def]
    operation, raw = MADE_INSIDE[name]
    PipelineFactory(slug="inside", steps=[ops(operation), DELIVER])
    response = post(runner, "/api/v1/pipelines/inside/run/", {"payload": {"r": raw}})
    # The step fails (a failed run is a 200 with status failed), the packet is left as it came, nothing is sent.
    assert response.status_code == 200, response.content[:500]
    body = response.json()
    assert body["status"] == "failed" and body["packet"]["payload"]["r"] == raw
    assert "not valid JSON" in body["error"] or "finite" in body["error"]
    assert Delivery.objects.count() == 0


@pytest.mark.parametrize("expr", ['`"\\u0000"`', "`1e999`", '`{"a": ["x\\u0000"]}`', "`-1e999`"])
def test_a_literal_no_packet_may_carry_is_refused_when_saved(expr) -> None:  # type: ignore[no-untyped-def]
    writer = key_client("pipelines:write")
    response = post(
        writer,
        "/api/v1/pipelines/",
        {"slug": "lit", "name": "lit", "steps": [ops({"op": "set", "path": "payload.y", "expr": expr})]},
    )
    assert response.status_code == 400, response.content[:500]
    assert "a packet cannot carry" in json.dumps(response.json()["errors"])


def test_to_number_of_an_out_of_range_text_is_null(runner) -> None:  # type: ignore[no-untyped-def]
    PipelineFactory(slug="num", steps=[ops({"op": "set", "path": "payload.n", "expr": "to_number(payload.r)"})])
    for raw, expected in (("1e999", None), ("nan", None), ("12.5", 12.5)):
        response = post(runner, "/api/v1/pipelines/num/run/", {"payload": {"r": raw}})
        assert response.status_code == 200 and response.json()["packet"]["payload"].get("n") == expected, (
            response.content
        )
