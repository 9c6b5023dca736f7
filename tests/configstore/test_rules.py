"""The rule engine: definitions, each kind's checks, custom messages, globs and RuleSet."""

from __future__ import annotations

import pytest

from configstore.rules import RULE_KINDS, RuleSet, compile_rule, key_matches, validate_rule_params

CASES = [
    ("type", {"type": "integer"}, [1, 0, -3], ["1", 1.5, True, None]),
    ("type", {"type": "number"}, [1, 1.5], ["1", False]),
    ("type", {"type": "boolean"}, [True, False], [0, "true"]),
    ("type", {"type": "list"}, [[], [1]], [{}, "a"]),
    ("type", {"type": "object"}, [{}, {"a": 1}], [[], 1]),
    ("type", {"type": "string"}, ["", "x"], [1, None]),
    ("range", {"min": 1, "max": 10}, [1, 10, 5.5], [0, 11, "5", True]),
    ("range", {"min": 0}, [0, 10**9], [-1]),
    ("pattern", {"regex": r"[a-z]+\.internal"}, ["db.internal"], ["DB.internal", "db.internal.evil", 5]),
    ("choices", {"choices": ["EUR", "USD", 1]}, ["EUR", 1], ["eur", True, 1.5]),
    ("length", {"min": 2, "max": 3}, ["ab", [1, 2, 3], {"a": 1, "b": 2}], ["a", "abcd", 12]),
    (
        "json_schema",
        {"schema": {"type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}}}},
        [{"a": 1}],
        [{"a": "x"}, {}, 3],
    ),
]


@pytest.mark.parametrize(("kind", "params", "good", "bad"), CASES)
def test_each_kind_accepts_good_and_rejects_bad_values(kind, params, good, bad):
    assert validate_rule_params(kind, params) == []
    check = compile_rule(kind, params)
    for value in good:
        assert check(value) == [], value
    for value in bad:
        assert check(value), value


def test_required_objects_only_to_absence_and_null():
    check = compile_rule("required", {})
    assert check(present=False) == ["is required."]
    assert check(None) == ["is required and must not be null."]
    assert check(0) == []
    assert compile_rule("range", {"min": 1})(present=False) == []


@pytest.mark.parametrize(
    ("kind", "params", "fragment"),
    [
        ("nope", {}, "Unknown rule kind"),
        ("type", {"type": "float"}, "type must be one of"),
        ("type", {}, "param 'type' is required"),
        ("range", {}, "give min, max or both"),
        ("range", {"min": 5, "max": 1}, "min must not exceed max"),
        ("range", {"min": "1"}, "min must be a number"),
        ("range", {"low": 1}, "unknown param 'low'"),
        ("pattern", {"regex": "("}, "does not compile"),
        ("choices", {"choices": []}, "non-empty list"),
        ("length", {"min": -1}, "non-negative integers"),
        ("json_schema", {"schema": {"type": "bogus"}}, "schema is not valid"),
        ("type", "notadict", "params must be an object"),
    ],
)
def test_invalid_definitions_are_reported(kind, params, fragment):
    problems = validate_rule_params(kind, params)
    assert any(fragment in p for p in problems), problems
    with pytest.raises(ValueError):
        compile_rule(kind, params)


def test_custom_message_replaces_the_kinds_messages():
    check = compile_rule("range", {"max": 5}, "Too many workers.")
    assert check(6) == ["Too many workers."]
    assert check(5) == []


def test_globs_and_exact_keys():
    assert key_matches("db.*", "db.port")
    assert key_matches("db.*", "db.pool.size")
    assert not key_matches("db.*", "db")
    assert key_matches("db.port", "db.port")
    assert not key_matches("db.port", "db.ports")


def test_ruleset_checks_written_values_and_required_keys():
    ruleset = RuleSet(
        [
            (1, "db.*", "type", {"type": "integer"}, ""),
            (2, "db.host", "required", {}, ""),
            (3, "feature.*", "required", {}, ""),
        ]
    )
    violations = ruleset.check_values({"db.port": "x", "db.timeout": 3, "other": "x"})
    assert [(v.key, v.rule_id, v.kind) for v in violations] == [("db.port", 1, "type")]
    missing = ruleset.check_required({"db.port": 1})
    assert {(v.key, v.rule_id) for v in missing} == {("db.host", 2), ("feature.*", 3)}
    assert ruleset.check_required({"db.host": "h", "feature.x": True}) == []


def test_kinds_registry_is_a_plain_dict_of_all_kinds():
    assert set(RULE_KINDS) == {"type", "range", "required", "pattern", "choices", "length", "json_schema"}
