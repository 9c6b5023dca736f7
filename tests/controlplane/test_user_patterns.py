"""controlplane.patterns and controlplane.jsonschemas: user regexes on RE2, schemas that cannot reach out."""

from __future__ import annotations

import fastjsonschema
import pytest
from django.test import override_settings

from configstore.rules import compile_rule, validate_rule_params
from controlplane.jsonschemas import REFUSE_REMOTE, compile_schema, schema_problems
from controlplane.patterns import PatternError, UserPattern, compile_user_regex
from tests.schema_host import SchemaHost


def test_the_refusing_handler_stops_fastjsonschema_fetching_for_every_scheme():
    with SchemaHost() as host:
        # The control: fastjsonschema on its own does fetch (this is what the issue saw), so the host counts.
        fastjsonschema.compile({"$ref": host.url("control.json")})
        assert host.connections == 1
        for uri in (host.url(), host.url(scheme="https"), "file:///etc/hostname", "other.json", "ftp://x/y"):
            with pytest.raises(fastjsonschema.JsonSchemaDefinitionException, match="refused"):
                fastjsonschema.compile({"properties": {"a": {"$ref": uri}}}, handlers=REFUSE_REMOTE)
        assert host.connections == 1


def test_compiled_schemas_match_user_patterns_with_re2():
    validate = compile_schema({"properties": {"a": {"pattern": "(a+)+$"}}, "patternProperties": {"^x": {}}})
    patterns = validate.__globals__["REGEX_PATTERNS"]
    assert set(patterns) == {"(a+)+$", "^x"}
    assert all(isinstance(p, UserPattern) for p in patterns.values())


def test_compile_schema_itself_refuses_remote_refs():
    # Even a caller that skips schema_problems cannot compile a remote reference.
    with pytest.raises(fastjsonschema.JsonSchemaDefinitionException, match="only local references"):
        compile_schema({"$ref": "http://127.0.0.1:9/x.json"})


@pytest.mark.timeout(20)
def test_format_regex_values_are_compiled_with_re2():
    validate = compile_schema({"type": "string", "format": "regex"})
    validate("^[a-z]+$")
    with pytest.raises(fastjsonschema.JsonSchemaValueException, match="valid regex"):
        validate(r"(a)\1")  # fine for Python's re, not for RE2


def test_builtin_formats_still_validate():
    validate = compile_schema({"type": "string", "format": "date-time"})
    validate("2026-12-01T08:00:00Z")
    with pytest.raises(fastjsonschema.JsonSchemaValueException):
        validate("yesterday")


def test_dollar_means_the_end_of_the_text():
    # fastjsonschema rewrites `$` to Python's `\Z`; RE2's `$` already means that (no match before a final \n).
    validate = compile_schema({"type": "string", "pattern": "^ab$"})
    validate("ab")
    with pytest.raises(fastjsonschema.JsonSchemaValueException):
        validate("ab\n")
    assert compile_rule("pattern", {"regex": "ab$"})("ab\n")


@override_settings(USER_REGEX_MAX_INPUT_CHARS=100)
def test_input_over_the_budget_never_matches():
    check = compile_rule("pattern", {"regex": "a*"})
    assert check("a" * 100) == []
    assert "too long" in check("a" * 101)[0]
    validate = compile_schema({"type": "string", "pattern": "^a*$"})
    validate("a" * 100)
    with pytest.raises(fastjsonschema.JsonSchemaValueException):
        validate("a" * 101)


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        (r"(a)\1", "backreferences"),
        (r"(?P<x>a)(?P=x)", "invalid"),
        (r"a(?!b)", "lookahead"),
        (r"(?<=a)b", "lookbehind"),
        ("(", "missing )"),
        ("a" * 1001, "at most 1000"),
        (5, "must be a string"),
        ("a{1001}", "repetition"),
    ],
)
def test_refused_patterns_say_why(pattern, fragment):
    with pytest.raises(PatternError, match=None) as caught:
        compile_user_regex(pattern)
    assert fragment in str(caught.value)


@override_settings(USER_REGEX_MAX_MEMORY=64 * 1024)
def test_a_pattern_whose_program_is_too_big_is_refused_not_slow():
    with pytest.raises(PatternError):
        compile_user_regex(r"(\pL{50}){20}")


def test_deep_and_huge_schemas_are_refused_without_recursing():
    deep: dict = {"type": "string"}
    for _ in range(5000):
        deep = {"items": deep}
    assert "nested deeper" in schema_problems(deep)[0]
    wide = {"properties": {f"p{i}": {"type": "string"} for i in range(6000)}}
    assert "more than 5000" in schema_problems(wide)[0]


@pytest.mark.parametrize(
    "schema",
    [
        {"$schema": "http://json-schema.org/draft-07/schema#", "type": "string"},
        {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "string"},
        {"$schema": "http://json-schema.org/draft-04/schema", "type": "string"},
        True,
        {"$defs": {"s": {"type": "string"}}, "anyOf": [{"$ref": "#/$defs/s"}, {"type": "null"}]},
    ],
)
def test_ordinary_schemas_are_still_accepted(schema):
    assert schema_problems(schema) == []
    assert validate_rule_params("json_schema", {"schema": schema}) == []


@pytest.mark.timeout(20)
@pytest.mark.parametrize("additional", [False, {}, {"type": "string"}])
def test_required_names_next_to_pattern_properties_never_meet_pythons_re(additional):
    # fastjsonschema matches patternProperties against `required` names with Python's `re` while generating
    # code when additionalProperties is falsy (False, and also {}); a catastrophic pattern would hang there.
    evil = "a" * 40 + "!"
    schema = {
        "type": "object",
        "patternProperties": {"(a+)+$": {"type": "integer"}},
        "required": [evil],
        "additionalProperties": additional,
    }
    assert schema_problems(schema) == []
    check = compile_rule("json_schema", {"schema": schema})
    assert check({"a" * 5: 1}) != []  # the required name is missing
    if additional is False:
        assert check({evil: 1}) != []  # not matched by the pattern, and no other property may exist
    elif additional == {}:
        assert check({evil: 1, "zz": [1]}) == []  # {} allows anything, as before the rewrite
    else:
        assert check({evil: "x"}) == [] and check({evil: 1}) != []


def test_lone_surrogates_from_json_are_matched_not_raised():
    text = "a" + chr(0xD800)  # json.loads("\"a\\ud800\"") gives this; strict UTF-8 cannot encode it
    assert compile_rule("pattern", {"regex": "a."})(text) == []
    assert compile_rule("pattern", {"regex": "b."})(text) != []
    compile_schema({"type": "string", "pattern": "^a"})(text)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("fmt", ["email", "idn-email"])
def test_the_quadratic_builtin_email_format_is_not_run_on_long_text(fmt):
    # fastjsonschema's email regex takes about 1.5 s for 20,000 characters of this on Python's engine,
    # and grows with the square: a 256 KiB packet would hold a worker for minutes.
    validate = compile_schema({"type": "string", "format": fmt})
    validate("ops@example.com")
    for _ in range(20):
        with pytest.raises(fastjsonschema.JsonSchemaValueException, match=fmt):
            validate("a@" + "a." * 100_000 + "@")
    with pytest.raises(fastjsonschema.JsonSchemaValueException):
        validate("not-an-address")


@pytest.mark.parametrize(
    "schema",
    [
        {"$ref": "#"},
        {"allOf": [{"type": "object"}, {"$ref": "#"}]},
        {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"anyOf": [{"$ref": "#/$defs/a"}]}}, "$ref": "#/$defs/a"},
        {"not": {"$ref": "#"}},
    ],
)
def test_a_ref_loop_every_value_reaches_is_refused_at_save(schema):
    assert schema_problems(schema) == [
        "schema refers to itself in a loop ($ref cycle that never reaches the value's contents)."
    ]


def test_a_ref_loop_only_some_values_reach_is_a_rule_error_not_a_crash():
    schema = {"if": {"type": "string", "minLength": 3}, "then": {"$ref": "#"}}
    assert schema_problems(schema) == []  # the probe values ("" among them) never enter the loop
    check = compile_rule("json_schema", {"schema": schema})
    assert "loop" in check("abcd")[0]
    assert check("ab") == [] and check(5) == []


def test_recursive_schemas_over_nested_data_still_work():
    tree = {"type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#"}}}}
    check = compile_rule("json_schema", {"schema": tree})
    assert check({"children": [{"children": [{"children": []}]}]}) == []
    assert check({"children": [{"children": [5]}]}) != []


@pytest.mark.parametrize("root_id", [True, 5, None, ["x"], {"a": 1}])
def test_a_root_id_of_any_type_does_not_crash_the_compiler(root_id):
    assert schema_problems({"id": root_id, "type": "string"}) == []


def test_format_regex_values_do_not_fill_the_pattern_cache():
    from controlplane.patterns import _compile

    validate = compile_schema({"type": "string", "format": "regex"})
    before = _compile.cache_info().currsize
    for i in range(50):
        validate(f"^value{i}$")
    assert _compile.cache_info().currsize == before


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    "make",
    [lambda k: k * (2**61 - 1), lambda k: [k * (2**61 - 1)], lambda k: {"id": -k * (2**61 - 1)}],
    ids=["ints", "lists", "objects"],
)
def test_unique_items_cannot_be_flooded_with_colliding_integers(make):
    # k * (2**61 - 1) all hash alike: in fastjsonschema's set() 100,000 of them would take many minutes.
    check = compile_rule("json_schema", {"schema": {"type": "array", "uniqueItems": True}})
    assert "uniqueItems cannot check" in check([make(k) for k in range(1, 100_001)])[0]
    assert check([make(k) for k in range(1, 1001)]) == []  # a moderate number is still checked
    assert check([make(1), make(1)]) != []
    assert check(list(range(100_000))) == []  # ordinary integers do not collide


def test_schemas_without_unique_items_do_not_pay_for_the_guard():
    assert compile_schema({"type": "array"}).__name__ != "guarded"
    assert compile_schema({"type": "array", "uniqueItems": True}).__name__ == "guarded"


@pytest.mark.parametrize("multiple", [0.1, 1e-300, 1e308])
def test_numbers_beyond_float_range_fail_the_rule_instead_of_raising(multiple):
    check = compile_rule("json_schema", {"schema": {"multipleOf": multiple}})
    # json.loads gives such integers; fastjsonschema divides them as floats (OverflowError, a 500 before).
    assert "out of the range" in check(10**400)[0]
    assert check(multiple) == []


def test_integer_multiples_of_huge_integers_are_still_exact():
    check = compile_rule("json_schema", {"schema": {"multipleOf": 3}})
    assert check(10**400 - 1) == []
    assert "multiple" in check(10**400)[0]
