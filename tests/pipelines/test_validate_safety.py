"""Pipeline definitions cannot make the server fetch, backtrack or recurse (issue #9 points 4, 5, 7; #10 point 3).

Saved through the API: remote JSON Schema references in a validate step are a 400 naming the step (and a
real local server sees no connection); catastrophic patterns in validate steps run at once; expressions
nested 2,000 deep in any step kind are a 400 naming the step; numbers past the cap fail the run, not the
request.
"""

from __future__ import annotations

import json

import pytest

from pipelines.models import Pipeline, Run
from tests.conftest import key_client
from tests.schema_host import SchemaHost, ref_variants

pytestmark = pytest.mark.django_db

EVIL = "a" * 40 + "!"
CATASTROPHIC = [(r"(a+)+$", False), (r"(a|aa)+$", False), (r"(.*a){20}", True), (r"^(\w+\s?)*$", False)]


@pytest.fixture
def writer():  # type: ignore[no-untyped-def]
    return key_client("pipelines:read", "pipelines:write", "pipelines:run")


def post_json(client, url: str, body: object):  # type: ignore[no-untyped-def]
    return client.post(url, data=json.dumps(body), content_type="application/json")


def create(client, steps: list[dict], slug: str = "p"):  # type: ignore[no-untyped-def]
    return post_json(client, "/api/v1/pipelines/", {"slug": slug, "name": slug, "steps": steps})


def validate_step(*rules: dict, on_invalid: str = "reject") -> dict:
    return {"name": "check", "kind": "validate", "config": {"rules": list(rules), "on_invalid": on_invalid}}


def assert_refused_naming_the_step(response, step: str = "check") -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    messages = response.json()["errors"]["steps.0.config"]
    assert any(f"step '{step}'" in m for m in messages), messages


def test_remote_refs_in_a_validate_step_are_refused_and_nothing_is_fetched(writer, tmp_path):  # type: ignore[no-untyped-def]
    existing = tmp_path / "schema.json"
    existing.write_text('{"type": "string"}')
    with SchemaHost() as host:
        for label, schema in ref_variants(host, str(existing)):
            rule = {"path": "payload.doc", "kind": "json_schema", "params": {"schema": schema}}
            response = create(writer, [validate_step(rule)], slug=f"p{abs(hash(label)) % 10**6}")
            assert_refused_naming_the_step(response)
        assert host.connections == 0
    assert not Pipeline.objects.exists()


def test_file_refs_in_a_step_answer_the_same_whether_the_file_exists(writer, tmp_path):  # type: ignore[no-untyped-def]
    target = tmp_path / "probe.json"
    rule = {"path": "payload", "kind": "json_schema", "params": {"schema": {"$ref": f"file://{target}"}}}
    target.write_text("{}")
    present = create(writer, [validate_step(rule)])
    target.unlink()
    absent = create(writer, [validate_step(rule)])
    assert present.status_code == absent.status_code == 400
    assert present.json()["errors"] == absent.json()["errors"]


def run(client, slug: str, payload: object):  # type: ignore[no-untyped-def]
    return post_json(client, f"/api/v1/pipelines/{slug}/run/", {"payload": payload})


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("regex", "found"), CATASTROPHIC)
def test_catastrophic_patterns_in_validate_steps_run_at_once(writer, regex, found):  # type: ignore[no-untyped-def]
    rules = [
        {"path": "payload.name", "kind": "pattern", "params": {"regex": regex}},
        {"path": "payload.doc", "kind": "json_schema", "params": {"schema": {"type": "string", "pattern": regex}}},
        {
            "path": "payload.map",
            "kind": "json_schema",
            "params": {"schema": {"type": "object", "patternProperties": {regex: {}}, "additionalProperties": False}},
        },
    ]
    assert create(writer, [validate_step(*rules, on_invalid="tag")]).status_code == 201
    response = run(writer, "p", {"name": EVIL, "doc": EVIL, "map": {EVIL: 1}})
    assert response.status_code == 200, response.content
    errors = response.json()["packet"]["metadata"].get("validation_errors", [])
    assert any(e.startswith("payload.name ") for e in errors)  # a pattern rule matches in full: never EVIL
    assert any(e.startswith("payload.doc ") for e in errors) is not found
    assert any(e.startswith("payload.map ") for e in errors) is not found
    clean = run(writer, "p", {"name": "a" * 40, "doc": "a" * 40, "map": {"a" * 40: 1}})
    assert "invalid" not in clean.json()["packet"]["tags"]


@pytest.mark.parametrize(
    "rule",
    [
        {"path": "payload.a", "kind": "pattern", "params": {"regex": r"(a)\1"}},
        {"path": "payload.a", "kind": "json_schema", "params": {"schema": {"pattern": r"(?=x)"}}},
        {"path": "payload.a", "kind": "json_schema", "params": {"schema": {"patternProperties": {r"(\w)\1": {}}}}},
    ],
)
def test_patterns_re2_cannot_run_are_refused_when_the_step_is_saved(writer, rule):  # type: ignore[no-untyped-def]
    response = create(writer, [validate_step(rule)])
    assert_refused_naming_the_step(response)
    assert "linear-time" in json.dumps(response.json())


DEEP = 2000
NESTED = "(" * DEEP + "payload.a" + ")" * DEEP
CHAINED = " + ".join(["payload.a"] * 600)  # deep once rewritten, within PIPELINE_EXPRESSION_MAX_LENGTH
CALLS = "abs(" * DEEP + "payload.a" + ")" * DEEP
FILTERS = "payload.items" + "[?items" * DEEP + "]" * DEEP


@pytest.mark.parametrize("expr", [NESTED, CHAINED, CALLS, FILTERS], ids=["parens", "chained +", "calls", "filters"])
@pytest.mark.parametrize(
    "make",
    [
        lambda e: {"name": "deep", "kind": "filter", "config": {"when": e}},
        lambda e: {"name": "deep", "kind": "route", "config": {"rules": [{"when": e, "to": "x"}]}},
        lambda e: {
            "name": "deep",
            "kind": "transform",
            "config": {"operations": [{"op": "set", "path": "payload.b", "expr": e}]},
        },
        lambda e: {"name": "deep", "kind": "transform", "config": {"operations": [{"op": "map", "expr": e}]}},
    ],
    ids=["filter", "route", "transform set", "transform map"],
)
def test_deep_expressions_are_a_400_naming_the_step(writer, expr, make):  # type: ignore[no-untyped-def]
    response = create(writer, [make(expr)])
    assert_refused_naming_the_step(response, step="deep")
    assert "nest" in json.dumps(response.json()["errors"])
    assert not Pipeline.objects.exists()


def test_a_number_past_the_cap_fails_the_run_not_the_request(writer):  # type: ignore[no-untyped-def]
    square = {"op": "set", "path": "payload.n", "expr": "payload.n * payload.n"}
    steps = [{"name": "grow", "kind": "transform", "config": {"operations": [square] * 8}}]
    assert create(writer, steps).status_code == 201
    response = run(writer, "p", {"n": 10**50 + 1})
    # Before the cap this was a 500 (Python's int-to-string limit while rendering). How a failed run is
    # answered (a failed result or a 422 budget problem) is the runtime's; it names the step and is recorded.
    assert response.status_code in (200, 422), response.content
    body = response.json()
    assert "grow" in json.dumps(body) and "out of range" in json.dumps(body)
    assert Run.objects.get(pk=body["run_id"]).status == "failed"


@pytest.mark.parametrize("condition", ["(" * 900 + "a" + ")" * 900, " || ".join(["a"] * 400)], ids=["parens", "||"])
def test_a_deep_step_condition_is_a_400_naming_the_step(writer, condition):  # type: ignore[no-untyped-def]
    # A condition is at most 2,000 characters, which is still deep enough to exhaust the stack.
    step = {"name": "deep", "kind": "filter", "condition": condition, "config": {"when": "payload.b"}}
    response = create(writer, [step])
    assert response.status_code == 400, response.content
    messages = [m for field, ms in response.json()["errors"].items() if field.startswith("steps.0") for m in ms]
    assert any("step 'deep'" in m and "nests more than" in m for m in messages), response.json()
