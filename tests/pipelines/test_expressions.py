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


# --- limits: nesting that would exhaust the stack, numbers that would not render (issue #9 point 7, #10 point 3) ---

DEEP = 2000
DEEP_EXPRESSIONS = {
    "parentheses": "(" * DEEP + "a" + ")" * DEEP,
    "chained +": " + ".join(["a"] * DEEP),
    "chained * and -": " * ".join(["a"] * (DEEP // 2)) + " - " + " - ".join(["a"] * (DEEP // 2)),
    "nested calls": "abs(" * DEEP + "a" + ")" * DEEP,
    "nested arithmetic calls": "add(" * DEEP + "a" + ", `1`)" * DEEP,
    "nested filters": "items" + "[?items" * DEEP + "]" * DEEP,
    "deep filter chain": "items[?" + " && ".join(["n > `0`"] * DEEP) + "]",
    "chained ||": " || ".join(["a"] * DEEP),
    "chained |": " | ".join(["a"] * DEEP),
    "chained ==": " == ".join(["a"] * DEEP),
    "nested lists": "[" * DEEP + "a" + "]" * DEEP,
    "nested hashes": "{k: " * DEEP + "a" + "}" * DEEP,
    "prefix !": "!" * DEEP + "a",
    "prefix &": "sort_by(items, " + "&" * DEEP + "n)",
}


@pytest.mark.parametrize("text", DEEP_EXPRESSIONS.values(), ids=DEEP_EXPRESSIONS.keys())
def test_deeply_nested_expressions_are_a_clean_compile_error(text: str, settings) -> None:  # type: ignore[no-untyped-def]
    settings.PIPELINE_EXPRESSION_MAX_LENGTH = 10**6  # the depth checks themselves, not the length cap
    with pytest.raises(ValueError, match="Invalid JMESPath") as caught:
        compile_expression(text)
    assert not isinstance(caught.value, RecursionError)
    message = str(caught.value)
    assert "nest" in message or "prefix operators" in message, message
    assert len(message) < 600  # the expression is shown shortened, not 2,000 levels of it


@pytest.mark.parametrize(
    "text",
    [
        "(" * 60 + "a" + ")" * 60,
        " + ".join(["a"] * 60),
        "abs(" * 60 + "a" + ")" * 60,
        " || ".join(["a"] * 100),
        "items" + "[?items" * 20 + "]" * 20,
        "'" + "(" * 3000 + "'",  # brackets inside a quoted string do not nest
    ],
)
def test_expressions_within_the_limits_still_compile_and_run(text: str) -> None:
    compiled = compile_expression(text)
    compiled.search({"a": 1, "items": []})


@pytest.mark.parametrize("limit", [8, 16])
def test_the_depth_limit_is_a_setting(settings, limit: int) -> None:
    settings.PIPELINE_EXPRESSION_MAX_DEPTH = limit
    compile_expression("abs(" * limit + "a" + ")" * limit)
    with pytest.raises(ValueError, match=f"more than {limit} levels"):
        compile_expression("abs(" * (limit + 1) + "a" + ")" * (limit + 1))


HUGE = 10**100 + 7  # 101 digits: the issue's number


@pytest.mark.parametrize(
    ("text", "payload"),
    [
        ("payload.n * payload.n", {"n": HUGE}),
        ("multiply(payload.n, payload.n)", {"n": HUGE}),
        ("payload.m * `10` + `0`", {"m": 10**99}),
        ("add(payload.m, payload.m)", {"m": 10**100 - 1}),
        ("subtract(`0`, payload.n)", {"n": HUGE}),
        ("payload.h * `1.5`", {"h": 10**400}),  # OverflowError in Python: int too large for a float
        ("divide(payload.h, `3`)", {"h": 10**400}),
        ("payload.f * payload.f", {"f": 1e200}),  # finite operands, infinite product
        ("round(payload.f * payload.f, `0`)", {"f": 1e300}),
        ("sort_by(payload.items, &multiply(n, n))[0].n", {"items": [{"n": HUGE}]}),  # interpreter path
    ],
)
def test_results_beyond_the_number_cap_raise_the_modules_own_error(text: str, payload: dict) -> None:
    from pipelines.expressions import ExpressionError

    with pytest.raises(ExpressionError):
        compile_expression(text).search({"payload": payload})


def test_repeated_squaring_stops_at_the_cap_instead_of_growing() -> None:
    from pipelines.expressions import ExpressionError

    square = compile_expression("payload.n * payload.n")
    n = 3
    with pytest.raises(ExpressionError, match="out of range"):
        for _ in range(20):  # 3 ** (2 ** 20) would have 500,000 digits
            n = square.search({"payload": {"n": n}})
    assert len(str(n)) <= 100


def test_numbers_within_the_cap_are_unchanged(settings) -> None:
    big = 10**99
    assert compile_expression("payload.m * `9`").search({"payload": {"m": big}}) == 9 * big
    assert compile_expression("payload.f * `2`").search({"payload": {"f": 1.5e99}}) == 3e99
    settings.PIPELINE_EXPRESSION_MAX_DIGITS = 200
    assert compile_expression("payload.m * payload.m").search({"payload": {"m": big}}) == big * big


def test_the_interpreter_path_follows_a_changed_number_cap(settings) -> None:
    from pipelines.expressions import ExpressionError

    text = "max_by(payload.items, &multiply(n, n)).n"  # an expref: evaluated by jmespath's interpreter
    packet = {"payload": {"items": [{"n": 10**60}, {"n": 2}]}}
    with pytest.raises(ExpressionError):
        compile_expression(text).search(packet)
    settings.PIPELINE_EXPRESSION_MAX_DIGITS = 200
    assert compile_expression(text).search(packet) == 10**60
    settings.PIPELINE_EXPRESSION_MAX_DIGITS = 100
    with pytest.raises(ExpressionError):
        compile_expression(text).search(packet)
