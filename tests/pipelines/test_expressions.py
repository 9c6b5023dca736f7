"""The JMESPath closure compiler answers exactly as jmespath's own interpreter (values and errors)."""

from __future__ import annotations

import jmespath
import pytest

from pipelines.expressions import OPTIONS, Expression, compile_expression

EXPRESSIONS = [
    "a == `1`", "a == `true`", "a == `false`", "`true` == a", "a != `true`", "a == `0`", "a == `2`", "a == `2.5`",
    "a == 'x'", "a != `null`", "a == b", "a != b", "obj == `{}`", "`[1,2]` == `[1,2]`",
    "a < b", "a > `0.5`", "a >= b", "`1` < a", "a <= 'b'", "s < 'b'", "a > `1`",
    "contains(tags, 'x')", "contains(a, b)", "contains(s, 'b')", "contains(tags, a)", "length(tags)",
    "multiply(a, `2`)", "multiply(a, b)", "add(a, b)", "subtract(a, `1`)", "divide(a, `0`)", "mod(a, `2`)", "round(a, `1`)",
    "abs(a)", "a || b", "a && b", "!a", "!`0`", "tags[0]", "tags[-1]", "tags[1:]", "items[*].n", "items[?n > `1`].n",
    "obj.*", "nested[]", "{x: a, y: b}", "[a, b]", "a | b", "@", "sort_by(items, &n)", "max_by(items, &n).n",
    "to_string(a)", "starts_with(s, 'ab')", "join(',', tags)", "concat(s, a)", "upper(s)", "lower(s)", "coalesce(z, a)",
    "sum(nums)", "keys(obj)", "type(a)", "not_null(z, a)", "obj.k.z", "items[0].n",
]  # fmt: skip
VALUES = [
    {"a": 1, "b": True, "tags": ["x", "y"], "items": [{"n": 1}, {"n": 2}], "obj": {"k": 1}, "nested": [[1], [2, 3]], "s": "abc", "nums": [1, 2.5]},
    {"a": 0, "b": 0, "tags": [], "items": [], "obj": {}, "nested": [], "s": "", "nums": []},
    {"a": "x", "b": None, "tags": "notalist", "items": None, "obj": [1], "nested": None, "s": 5, "nums": ["a"]},
    {"a": True, "b": 1.0, "tags": ["a", 1], "s": None, "obj": {"k": {"z": 3}}},
    {"a": False, "b": 0.0}, {"a": 1.0}, {"a": 2.0, "b": 3}, {"a": None}, {"a": 2.5, "b": 2, "tags": [None, True]},
    [], None, "str", 5,
]  # fmt: skip


def _outcome(fn, value):  # type: ignore[no-untyped-def]
    try:
        result = fn(value)
    except Exception as exc:
        return ("error", type(exc).__name__)
    return ("ok", type(result).__name__, result)


@pytest.mark.parametrize("text", EXPRESSIONS)
def test_compiled_expressions_match_the_interpreter(text: str) -> None:
    ours = compile_expression(text)
    reference = jmespath.compile(text)
    for value in VALUES:
        assert _outcome(ours.search, value) == _outcome(lambda v: reference.search(v, options=OPTIONS), value), value


def test_expressions_using_exprefs_fall_back_to_the_interpreter() -> None:
    expression = Expression("sort_by(items, &n)[0].n")
    assert expression.search == expression._interpret
    assert expression.search({"items": [{"n": 2}, {"n": 1}]}) == 1


ARITHMETIC = {
    "payload.price * payload.qty": 20,
    "a + b * c": 12,
    "(a + b) * c": 18,
    "a - b - c": 1,
    "a % b + c": 2,
    "a / b": 2.0,
    "items[?price * qty > `10`].name": ["x"],
    "round(a / `4`, `1`)": 1.5,
    "{t: a * b, u: c}": {"t": 18, "u": 2},
    "payload.price * payload.qty > `19` && a <= b * c": True,
}
ARITHMETIC_PACKET = {
    "a": 6,
    "b": 3,
    "c": 2,
    "payload": {"price": 5, "qty": 4},
    "items": [{"price": 2, "qty": 6, "name": "x"}, {"price": 1, "qty": 1, "name": "y"}],
}


@pytest.mark.parametrize(("text", "expected"), list(ARITHMETIC.items()))
def test_infix_arithmetic_is_evaluated_with_precedence(text: str, expected: object) -> None:
    assert compile_expression(text).search(ARITHMETIC_PACKET) == expected


@pytest.mark.parametrize(
    "text",
    ["items[*].price", "payload.*", "*", "items[1:-1]", "items[-1]", "'a*b'", '`"1-2"`', "contains(tags, 'a+b')"],
)
def test_wildcards_slices_and_quoted_text_are_not_arithmetic(text: str) -> None:
    packet = {**ARITHMETIC_PACKET, "tags": ["a+b"]}
    assert compile_expression(text).search(packet) == jmespath.search(text, packet, options=OPTIONS)


@pytest.mark.parametrize("text", ["a *", "a + + b", "(a + b", "a + 'b"])
def test_broken_arithmetic_is_refused_with_the_expression_named(text: str) -> None:
    with pytest.raises(ValueError, match="Invalid JMESPath"):
        compile_expression(text)


def test_the_issue_example_sets_a_total_in_a_transform() -> None:
    from pipelines.executor import compile_pipeline, prepare_packet

    definition = {
        "slug": "totals",
        "version": 1,
        "error_policy": "stop",
        "steps": [
            {
                "name": "total",
                "kind": "transform",
                "config": {
                    "operations": [{"op": "set", "path": "payload.total", "expr": "payload.price * payload.qty"}]
                },
            }
        ],
    }
    result = compile_pipeline(definition).run(prepare_packet({"payload": {"price": 30, "qty": 4}}))
    assert result.status == "succeeded" and result.packet["payload"]["total"] == 120
