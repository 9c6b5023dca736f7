"""Rules saved through the API cannot reach out, hang a worker or crash validation (issue #9 points 4, 5, 7).

- json_schema rules resolve only local `#...` references: every other `$ref` (http, https, file, relative,
  nested `$id` tricks...) is a 400 when the rule is saved, and a real local server sees no connection.
- pattern rules and JSON Schema patterns run on RE2: catastrophic-backtracking patterns finish at once
  (the timeout marker is the guard, the assertions are about behaviour); backreferences are a 400 at save.
- a rule whose kind or params have the wrong JSON type is a field error, never a 500.
"""

from __future__ import annotations

import json

import pytest

from configstore.models import Rule
from tests.conftest import key_client
from tests.schema_host import SchemaHost, ref_variants

# (pattern, whether it *finds* a match in EVIL: JSON Schema `pattern` searches, pattern rules match in full).
# On Python's backtracking engine each of these takes minutes or more on EVIL.
CATASTROPHIC = [(r"(a+)+$", False), (r"(a|aa)+$", False), (r"(.*a){20}", True), (r"^(\w+\s?)*$", False)]
EVIL = "a" * 40 + "!"


@pytest.fixture
def rw(namespace):  # type: ignore[no-untyped-def]
    return key_client("config:read", "config:write")


def post_rule(client, body):  # type: ignore[no-untyped-def]
    return client.post("/api/v1/config/payments/rules/", data=json.dumps(body), content_type="application/json")


def put_value(client, key, value):  # type: ignore[no-untyped-def]
    return client.put(
        f"/api/v1/config/payments/{key}/", data=json.dumps({"value": value}), content_type="application/json"
    )


def accepted(response) -> bool:  # type: ignore[no-untyped-def]
    """A PUT that stored the value (201 for a new key, 200 for a changed one)."""
    return response.status_code in (200, 201)


def schema_rule(schema: object) -> dict:
    return {"key": "doc", "kind": "json_schema", "params": {"schema": schema}}


def test_remote_refs_are_refused_at_save_and_nothing_is_fetched(rw, tmp_path):  # type: ignore[no-untyped-def]
    existing = tmp_path / "schema.json"
    existing.write_text('{"type": "string"}')
    with SchemaHost() as host:
        for label, schema in ref_variants(host, str(existing)):
            response = post_rule(rw, schema_rule(schema))
            assert response.status_code == 400, (label, response.content)
            assert response["Content-Type"].startswith("application/problem+json")
            assert "params" in response.json()["errors"], label
        assert host.connections == 0
    assert not Rule.objects.exists()


def test_file_refs_answer_the_same_whether_the_file_exists_or_not(rw, tmp_path):  # type: ignore[no-untyped-def]
    target = tmp_path / "probe.json"
    body = schema_rule({"type": "object", "properties": {"a": {"$ref": f"file://{target}"}}})
    target.write_text('{"type": "string"}')
    present = post_rule(rw, body)
    target.unlink()
    absent = post_rule(rw, body)
    assert present.status_code == absent.status_code == 400
    assert present.json()["errors"] == absent.json()["errors"]


def test_local_refs_and_a_root_id_still_work_without_any_connection(rw):  # type: ignore[no-untyped-def]
    with SchemaHost() as host:
        schema = {
            "$id": host.url("root.json"),  # an identifier only: nothing resolves against it
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {"port": {"$ref": "#/$defs/port"}, "self": {"$ref": "#"}},
            "$defs": {"port": {"type": "integer", "minimum": 1}},
        }
        assert post_rule(rw, schema_rule(schema)).status_code == 201
        assert accepted(put_value(rw, "doc", {"port": 8080, "self": {"port": 1}}))
        assert put_value(rw, "doc", {"port": 0}).status_code == 400
        assert put_value(rw, "doc", {"port": 1, "self": {"port": "x"}}).status_code == 400  # `#` is this schema
        # A draft-04 style `id` below the root moves fastjsonschema's base URI; still nothing is fetched.
        nested_id = {"properties": {"a": {"id": host.url("sub/"), "properties": {"b": {"$ref": "#"}}}}}
        post_rule(rw, schema_rule(nested_id) | {"key": "other"})
        assert host.connections == 0


@pytest.mark.timeout(20)
@pytest.mark.parametrize(("regex", "found"), CATASTROPHIC)
def test_catastrophic_pattern_rule_answers_at_once(rw, regex, found):  # type: ignore[no-untyped-def]
    assert post_rule(rw, {"key": "name", "kind": "pattern", "params": {"regex": regex}}).status_code == 201
    refused = put_value(rw, "name", EVIL)
    assert refused.status_code == 400 and "must match" in json.dumps(refused.json())
    assert accepted(put_value(rw, "name", "a" * 40))  # a full match is still accepted


@pytest.mark.timeout(20)
@pytest.mark.parametrize(("regex", "found"), CATASTROPHIC)
def test_catastrophic_json_schema_pattern_answers_at_once(rw, regex, found):  # type: ignore[no-untyped-def]
    schema = {"type": "object", "properties": {"name": {"type": "string", "pattern": regex}}}
    assert post_rule(rw, schema_rule(schema)).status_code == 201
    assert accepted(put_value(rw, "doc", {"name": EVIL})) == found
    assert accepted(put_value(rw, "doc", {"name": "a" * 40}))


@pytest.mark.timeout(20)
@pytest.mark.parametrize(("regex", "found"), CATASTROPHIC)
def test_catastrophic_pattern_properties_answer_at_once(rw, regex, found):  # type: ignore[no-untyped-def]
    schema = {"type": "object", "patternProperties": {regex: {"type": "integer"}}, "additionalProperties": False}
    assert post_rule(rw, schema_rule(schema)).status_code == 201
    assert accepted(put_value(rw, "doc", {"a" * 40: 1}))
    assert put_value(rw, "doc", {"a" * 40: "x"}).status_code == 400  # matched: must be an integer
    assert accepted(put_value(rw, "doc", {EVIL: 1})) == found  # unmatched: not allowed


@pytest.mark.timeout(20)
@pytest.mark.parametrize(("regex", "found"), CATASTROPHIC)
def test_pattern_properties_with_required_names_compile_at_once(rw, regex, found):  # type: ignore[no-untyped-def]
    # `required` + `additionalProperties: false` next to patternProperties is the combination for which
    # fastjsonschema itself matches the patterns against the required names while generating code.
    schema = {
        "type": "object",
        "patternProperties": {regex: {"type": "integer"}},
        "required": [EVIL],
        "additionalProperties": False,
    }
    assert post_rule(rw, schema_rule(schema) | {"key": "req"}).status_code == 201
    assert accepted(put_value(rw, "req", {EVIL: 1})) == found
    assert put_value(rw, "req", {EVIL: 1, "b": 2}).status_code == 400


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"key": "x", "kind": "pattern", "params": {"regex": r"(a)\1"}}, "backreferences are not supported"),
        ({"key": "x", "kind": "pattern", "params": {"regex": r"a(?=b)"}}, "lookahead"),
        (schema_rule({"type": "string", "pattern": r"(a)\1"}), "backreferences are not supported"),
        (schema_rule({"patternProperties": {r"(?<=x)y": {}}}), "lookahead and lookbehind"),
        (schema_rule({"properties": {"a": {"pattern": r"x\Z"}}}), "use \\z or $"),
    ],
)
def test_patterns_re2_cannot_run_are_refused_with_a_clear_message(rw, body, fragment):  # type: ignore[no-untyped-def]
    response = post_rule(rw, body)
    assert response.status_code == 400
    assert any(fragment in message for message in response.json()["errors"]["params"]), response.json()


@pytest.mark.parametrize("kind", [{}, [], {"a": 1}, ["pattern"], 1, 1.5, True, None])
def test_non_string_kinds_are_field_errors(rw, kind):  # type: ignore[no-untyped-def]
    response = post_rule(rw, {"key": "x", "kind": kind, "params": {}})
    assert response.status_code == 400, response.content
    assert "kind" in response.json()["errors"]


@pytest.mark.parametrize("value", [True, 1, 1.5, [], [1], {}, {"a": 1}, None, "", 10**30])
@pytest.mark.parametrize(
    ("kind", "param"),
    [
        ("type", "type"),
        ("range", "min"),
        ("pattern", "regex"),
        ("choices", "choices"),
        ("length", "max"),
        ("json_schema", "schema"),
    ],
)
def test_wrongly_typed_params_are_field_errors_never_500(rw, kind, param, value):  # type: ignore[no-untyped-def]
    response = post_rule(rw, {"key": "x", "kind": kind, "params": {param: value}})
    assert response.status_code in (201, 400), response.content
    if response.status_code == 400:
        assert response["Content-Type"].startswith("application/problem+json")


def test_non_string_kind_through_the_service_is_a_validation_error(namespace):  # type: ignore[no-untyped-def]
    from django.core.exceptions import ValidationError

    from configstore import services

    for kind in ({}, [], 3):
        with pytest.raises(ValidationError) as caught:
            services.rule_create(namespace=namespace, key="x", kind=kind, params={}, actor="test")  # type: ignore[arg-type]
        assert "kind" in caught.value.message_dict


def test_a_rule_stored_before_these_checks_refuses_values_instead_of_fetching(rw, namespace):  # type: ignore[no-untyped-def]
    # Rows written before the fix (or by hand) never went through the save-time check.
    with SchemaHost() as host:
        Rule.objects.create(namespace=namespace, key="doc", kind="json_schema", params={"schema": {"$ref": host.url()}})
        Rule.objects.create(namespace=namespace, key="name", kind="pattern", params={"regex": r"(a)\1"})
        for key, value in (("doc", "x"), ("name", "aa")):
            response = put_value(rw, key, value)
            assert response.status_code == 400, response.content
            assert "no longer valid" in json.dumps(response.json())
        assert accepted(put_value(rw, "other", "x"))  # keys no broken rule covers are written as before
        assert host.connections == 0
