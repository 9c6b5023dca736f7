"""Each step kind and transform operation, through the pure executor (no database)."""

from __future__ import annotations

import pytest

from pipelines.executor import validate_steps
from pipelines.paths import MISSING
from tests.pipelines.conftest import run_steps, transform

PACKET = {
    "payload": {"price": 2.5, "qty": 4, "code": " ab-1 ", "nested": {"a": 1}, "raw": '{"x": [1, 2]}'},
    "metadata": {"src": "web"},
    "tags": ["t1"],
}


@pytest.mark.parametrize(
    ("operation", "path", "expected"),
    [
        ({"op": "set", "path": "payload.total", "expr": "multiply(payload.price, payload.qty)"}, "total", 10.0),
        ({"op": "set", "path": "payload.flag", "value": {"deep": [1]}}, "flag", {"deep": [1]}),
        ({"op": "set", "path": "payload.new.inner", "value": 3}, "new", {"inner": 3}),
        ({"op": "default", "path": "payload.qty", "value": 9}, "qty", 4),
        ({"op": "default", "path": "payload.missing", "value": 9}, "missing", 9),
        ({"op": "default", "path": "payload.missing", "expr": "payload.qty"}, "missing", 4),
        ({"op": "cast", "path": "payload.qty", "type": "str"}, "qty", "4"),
        ({"op": "cast", "path": "payload.price", "type": "int"}, "price", 2),
        ({"op": "cast", "path": "payload.qty", "type": "float"}, "qty", 4.0),
        ({"op": "cast", "path": "payload.qty", "type": "bool"}, "qty", True),
        ({"op": "upper", "path": "payload.code"}, "code", " AB-1 "),
        ({"op": "lower", "path": "payload.code"}, "code", " ab-1 "),
        ({"op": "strip", "path": "payload.code"}, "code", "ab-1"),
        ({"op": "replace", "path": "payload.code", "old": "-", "new": "_"}, "code", " ab_1 "),
        ({"op": "truncate", "path": "payload.code", "length": 3}, "code", " ab"),
        (
            {"op": "format", "path": "payload.label", "template": "{payload.qty} x {metadata.src} {{ok}}"},
            "label",
            "4 x web {ok}",
        ),
        ({"op": "json_parse", "path": "payload.raw"}, "raw", {"x": [1, 2]}),
        ({"op": "json_dump", "path": "payload.nested"}, "nested", '{"a":1}'),
    ],
)
def test_transform_operations(operation: dict, path: str, expected: object) -> None:
    result = run_steps([transform(operation)], PACKET)
    assert result.status == "succeeded", result.error
    assert result.packet["payload"][path] == expected


def test_remove_rename_copy_and_the_input_is_left_alone() -> None:
    ops = [
        {"op": "copy", "path": "payload.nested", "to": "metadata.copied"},
        {"op": "rename", "path": "payload.code", "to": "payload.sku"},
        {"op": "remove", "path": "payload.raw"},
        {"op": "set", "path": "payload.nested.a", "value": 2},
    ]
    result = run_steps([transform(*ops)], PACKET)
    payload = result.packet["payload"]
    assert "code" not in payload and payload["sku"] == " ab-1 " and "raw" not in payload
    assert result.packet["metadata"]["copied"] == {"a": 1}, "copy must be deep, not an alias"
    assert PACKET["payload"]["nested"] == {"a": 1} and "code" in PACKET["payload"]


def test_map_tags_and_metadata() -> None:
    ops = [
        {"op": "add_tag", "value": "seen"},
        {"op": "add_tag", "value": "seen"},
        {"op": "remove_tag", "value": "t1"},
        {"op": "set_metadata", "key": "count", "expr": "payload.qty"},
        {"op": "map", "expr": "{total: multiply(payload.price, payload.qty), code: payload.code}"},
    ]
    result = run_steps([transform(*ops)], PACKET)
    assert result.packet["tags"] == ["seen"]
    assert result.packet["metadata"] == {"src": "web", "count": 4}
    assert result.packet["payload"] == {"total": 10.0, "code": " ab-1 "}


@pytest.mark.parametrize(
    ("operation", "message"),
    [
        ({"op": "upper", "path": "payload.qty"}, "not a string"),
        ({"op": "cast", "path": "payload.code", "type": "int"}, "cannot cast to int"),
        ({"op": "cast", "path": "payload.nested", "type": "float"}, "cannot cast"),
        ({"op": "json_parse", "path": "payload.code"}, "not valid JSON"),
        ({"op": "set", "path": "payload.qty.inner", "value": 1}, "is not an object"),
        ({"op": "set", "path": "payload.x", "expr": "abs(payload.code)"}, "failed"),
    ],
)
def test_transform_errors_fail_the_packet_and_name_the_step(operation: dict, message: str) -> None:
    result = run_steps([transform(operation)], PACKET)
    assert result.status == "failed"
    assert message in result.error and "step 't'" in result.error
    assert result.trace[0]["error"] and result.trace[0]["outcome"] == "error"


def test_operations_on_missing_paths_are_noops() -> None:
    ops = [
        {"op": "upper", "path": "payload.nope"},
        {"op": "rename", "path": "payload.nope", "to": "payload.b"},
        {"op": "cast", "path": "payload.nope", "type": "int"},
    ]
    result = run_steps([transform(*ops)], PACKET)
    assert result.status == "succeeded" and result.packet["payload"] == PACKET["payload"]


VALIDATE_RULES = [
    {"path": "payload.amount", "kind": "range", "params": {"min": 0, "max": 100}},
    {"path": "payload.currency", "kind": "choices", "params": {"choices": ["EUR", "USD"]}},
    {"path": "payload.code", "kind": "pattern", "params": {"regex": "^[A-Z]{3}$"}},
    {"path": "payload.name", "kind": "length", "params": {"min": 2}},
    {"path": "payload.id", "kind": "required"},
    {"path": "payload.amount", "kind": "type", "params": {"type": "integer"}},
    {"path": "payload", "kind": "json_schema", "params": {"schema": {"type": "object", "required": ["amount"]}}},
]


def test_validate_passes_a_good_packet() -> None:
    step = {"name": "v", "kind": "validate", "config": {"rules": VALIDATE_RULES}}
    result = run_steps([step], {"payload": {"amount": 5, "currency": "EUR", "code": "ABC", "name": "ok", "id": 1}})
    assert result.status == "succeeded", result.errors


def test_validate_rejects_with_every_error() -> None:
    step = {"name": "v", "kind": "validate", "config": {"rules": VALIDATE_RULES, "on_invalid": "reject"}}
    result = run_steps([step], {"payload": {"amount": 500.5, "currency": "JPY", "code": "abc", "name": "x"}})
    assert result.status == "failed"
    joined = " | ".join(result.errors)
    for path in ("payload.amount", "payload.currency", "payload.code", "payload.name", "payload.id"):
        assert path in joined
    assert len(result.errors) == 6  # range, choices, pattern, length, required, type


def test_validate_tag_mode_marks_invalid_and_continues() -> None:
    steps = [
        {"name": "v", "kind": "validate", "priority": 1, "config": {"rules": VALIDATE_RULES[:1], "on_invalid": "tag"}},
        {
            "name": "after",
            "kind": "transform",
            "priority": 2,
            "config": {"operations": [{"op": "add_tag", "value": "after"}]},
        },
    ]
    result = run_steps(steps, {"payload": {"amount": -1}})
    assert result.status == "succeeded"
    assert result.packet["tags"] == ["invalid", "after"]
    assert result.packet["metadata"]["validation_errors"] == ["payload.amount must be at least 0."]


def route(mode: str, default: object = None) -> dict:
    config = {
        "mode": mode,
        "rules": [
            {"when": "contains(tags, 'priority')", "to": "fast"},
            {"when": "payload.amount > `100`", "to": {"service": "billing"}},
            {"when": "payload.amount > `1000`", "to": {"pipeline": "audit"}},
        ],
    }
    if default is not None:
        config["default"] = default
    return {"name": "r", "kind": "route", "config": config}


def test_route_first_match_all_matches_and_default() -> None:
    packet = {"payload": {"amount": 5000}, "tags": ["priority"]}
    assert run_steps([route("first")], packet).routes == ["fast"]
    assert run_steps([route("all")], packet).routes == ["fast", "service:billing", "pipeline:audit"]
    assert run_steps([route("all", "standard")], {"payload": {"amount": 1}}).routes == ["standard"]
    assert run_steps([route("all")], {"payload": {"amount": 1}}).routes == []


def test_filter_drops_when_truthy() -> None:
    steps = [
        {"name": "f", "kind": "filter", "priority": 1, "config": {"when": "payload.amount == `0`"}},
        route("all", "standard") | {"priority": 2},
    ]
    dropped = run_steps(steps, {"payload": {"amount": 0}})
    assert dropped.status == "dropped" and dropped.routes == [] and len(dropped.trace) == 1
    assert dropped.trace[0]["outcome"] == "dropped"
    kept = run_steps(steps, {"payload": {"amount": 3}})
    assert kept.status == "succeeded" and kept.routes == ["standard"]


def test_enrich_reads_through_the_injected_lookup() -> None:
    values = {("shop", "region"): "eu", ("shop", "limits"): {"max": 5}}

    def lookup(namespace: str, key: str) -> object:
        return values.get((namespace, key), MISSING)

    steps = [
        {"name": "e1", "kind": "enrich", "config": {"path": "metadata.region", "namespace": "shop", "key": "region"}},
        {"name": "e2", "kind": "enrich", "config": {"path": "payload.limits", "namespace": "shop", "key": "limits"}},
        {
            "name": "e3",
            "kind": "enrich",
            "config": {"path": "payload.tier", "namespace": "shop", "key": "tier", "default": "basic"},
        },
        {"name": "e4", "kind": "enrich", "config": {"path": "payload.absent", "namespace": "shop", "key": "nope"}},
    ]
    result = run_steps(steps, {"payload": {}}, lookup=lookup)
    assert result.packet["metadata"]["region"] == "eu"
    assert result.packet["payload"] == {"limits": {"max": 5}, "tier": "basic"}
    required = {
        "name": "e",
        "kind": "enrich",
        "config": {"path": "payload.x", "namespace": "shop", "key": "nope", "required": True},
    }
    assert "is not set" in run_steps([required], {"payload": {}}, lookup=lookup).error


def test_conditions_gate_steps() -> None:
    steps = [
        {
            "name": "big",
            "kind": "transform",
            "condition": "payload.amount > `100`",
            "config": {"operations": [{"op": "add_tag", "value": "big"}]},
        },
        {"name": "always", "kind": "transform", "config": {"operations": [{"op": "add_tag", "value": "seen"}]}},
    ]
    small = run_steps(steps, {"payload": {"amount": 1}})
    assert small.packet["tags"] == ["seen"]
    assert [(e["step"], e["ran"]) for e in small.trace] == [("big", False), ("always", True)]
    assert run_steps(steps, {"payload": {"amount": 500}}).packet["tags"] == ["big", "seen"]
    # JMESPath truthiness: empty list and null are false, 0 is true.
    zero = [
        {
            "name": "z",
            "kind": "transform",
            "condition": "payload.n",
            "config": {"operations": [{"op": "add_tag", "value": "z"}]},
        }
    ]
    assert run_steps(zero, {"payload": {"n": 0}}).packet["tags"] == ["z"]
    assert run_steps(zero, {"payload": {"n": []}}).packet["tags"] == []


def test_priority_orders_steps_and_ties_keep_creation_order() -> None:
    steps = [
        {"name": "c", "kind": "transform", "priority": 30, "config": {"operations": [{"op": "add_tag", "value": "c"}]}},
        {"name": "a", "kind": "transform", "priority": 10, "config": {"operations": [{"op": "add_tag", "value": "a"}]}},
        {
            "name": "b1",
            "kind": "transform",
            "priority": 20,
            "config": {"operations": [{"op": "add_tag", "value": "b1"}]},
        },
        {
            "name": "b2",
            "kind": "transform",
            "priority": 20,
            "config": {"operations": [{"op": "add_tag", "value": "b2"}]},
        },
        {
            "name": "off",
            "kind": "transform",
            "priority": 0,
            "enabled": False,
            "config": {"operations": [{"op": "add_tag", "value": "off"}]},
        },
    ]
    result = run_steps(steps, {"payload": None})
    assert result.packet["tags"] == ["a", "b1", "b2", "c"]
    assert [e["step"] for e in result.trace] == ["a", "b1", "b2", "c"]


FAILING = {
    "name": "bad",
    "kind": "transform",
    "priority": 2,
    "config": {"operations": [{"op": "set", "path": "payload.x", "value": 1}, {"op": "upper", "path": "payload.n"}]},
}
FIRST = {
    "name": "first",
    "kind": "transform",
    "priority": 1,
    "config": {"operations": [{"op": "add_tag", "value": "first"}]},
}
LAST = {
    "name": "last",
    "kind": "transform",
    "priority": 3,
    "config": {"operations": [{"op": "add_tag", "value": "last"}]},
}


def test_error_policy_stop_ends_the_run_at_the_failing_step() -> None:
    result = run_steps([FIRST, FAILING, LAST], {"payload": {"n": 5}}, error_policy="stop")
    assert result.status == "failed"
    assert [e["step"] for e in result.trace] == ["first", "bad"]
    assert result.packet["tags"] == ["first"]


def test_error_policy_continue_runs_the_rest_and_rolls_back_the_failed_step() -> None:
    result = run_steps([FIRST, FAILING, LAST], {"payload": {"n": 5}}, error_policy="continue")
    assert result.status == "failed"
    assert [e["step"] for e in result.trace] == ["first", "bad", "last"]
    assert result.packet["tags"] == ["first", "last"]
    assert "x" not in result.packet["payload"], "half-applied operations are rolled back"


def test_on_error_skip_keeps_the_packet_and_the_run_succeeds() -> None:
    result = run_steps([FIRST, FAILING | {"on_error": "skip"}, LAST], {"payload": {"n": 5}})
    assert result.status == "succeeded"
    assert result.packet == {"id": result.packet["id"], "payload": {"n": 5}, "metadata": {}, "tags": ["first", "last"]}
    assert result.trace[1]["error"] and result.trace[1]["outcome"] == "error"


def test_a_transform_breaking_the_packet_shape_fails_it() -> None:
    result = run_steps([transform({"op": "set", "path": "tags", "value": "nope"})], {"payload": 1})
    assert result.status == "failed" and "tags" in result.error


def test_capture_records_before_and_after() -> None:
    result = run_steps([FIRST, LAST], {"payload": 1}, capture=True)
    assert result.trace[0]["before"]["tags"] == [] and result.trace[0]["after"]["tags"] == ["first"]
    assert result.trace[1]["before"]["tags"] == ["first"] and result.trace[1]["after"]["tags"] == ["first", "last"]


@pytest.mark.parametrize(
    ("step", "field", "fragment"),
    [
        ({"name": "x", "kind": "nope", "config": {}}, "kind", "unknown kind"),
        ({"name": "x", "kind": "filter", "config": {"when": "a[["}}, "config", "Invalid JMESPath"),
        ({"name": "x", "kind": "filter", "config": {"when": "nofn(a)"}}, "config", "unknown function"),
        ({"name": "x", "kind": "filter", "config": {}}, "config", "'when' is a required property"),
        ({"name": "x", "kind": "transform", "config": {"operations": [{"op": "explode"}]}}, "config", "is not one of"),
        (
            {"name": "x", "kind": "transform", "config": {"operations": [{"op": "set", "path": "payload.a"}]}},
            "config",
            "exactly one of",
        ),
        (
            {"name": "x", "kind": "transform", "config": {"operations": [{"op": "upper", "path": "body.a"}]}},
            "config",
            "must start with",
        ),
        (
            {
                "name": "x",
                "kind": "validate",
                "config": {"rules": [{"path": "payload.a", "kind": "range", "params": {"low": 1}}]},
            },
            "config",
            "unknown param",
        ),
        (
            {"name": "x", "kind": "validate", "config": {"rules": [{"path": "payload.a", "kind": "bogus"}]}},
            "config",
            "Unknown rule kind",
        ),
        (
            {"name": "x", "kind": "route", "config": {"rules": [{"when": "a", "to": {"queue": "q"}}]}},
            "config",
            "rules.0.to",
        ),
        (
            {"name": "x", "kind": "enrich", "config": {"path": "payload.a", "namespace": "n"}},
            "config",
            "'key' is a required",
        ),
        (
            {
                "name": "x",
                "kind": "transform",
                "condition": "a ||",
                "config": {"operations": [{"op": "add_tag", "value": "a"}]},
            },
            "condition",
            "Invalid JMESPath",
        ),
        (
            {
                "name": "x",
                "kind": "transform",
                "on_error": "explode",
                "config": {"operations": [{"op": "add_tag", "value": "a"}]},
            },
            "on_error",
            "fail or skip",
        ),
    ],
)
def test_definition_errors_name_the_step_and_field(step: dict, field: str, fragment: str) -> None:
    errors = validate_steps([step])
    assert list(errors) == [f"steps.0.{field}"]
    assert any(fragment in message and "step 'x'" in message for message in errors[f"steps.0.{field}"]), errors


def test_duplicate_step_names_are_refused() -> None:
    errors = validate_steps([transform({"op": "add_tag", "value": "a"}), transform({"op": "add_tag", "value": "b"})])
    assert "duplicate step name" in errors["steps.1.name"][0]


def test_an_expression_that_cannot_be_evaluated_fails_the_step_with_the_expression_named() -> None:
    step = {"name": "r", "kind": "route", "config": {"rules": [{"when": "payload.a > payload.b", "to": "x"}]}}
    result = run_steps([step], {"payload": {"a": "text", "b": 1}})
    assert result.status == "failed"
    assert "expression 'payload.a > payload.b' failed" in result.error
    condition = [transform({"op": "add_tag", "value": "x"}) | {"condition": "payload.a > payload.b"}]
    assert "condition failed" in run_steps(condition, {"payload": {"a": "text", "b": 1}}).error
