"""JMESPath, the one expression language for conditions, `set`/`map` expressions, filters and routes.

Standard JMESPath has no arithmetic operators, so a few pure functions are added: `add`, `subtract`,
`multiply`, `divide`, `mod`, `round`, `concat`, `upper`, `lower`, `coalesce`, and infix `+ - * / %`
(JMESPath Community Edition's syntax) is rewritten into them by `pipelines.arithmetic` before parsing:
`payload.price * payload.qty` is `multiply(payload.price, payload.qty)`. Documented in docs/pipelines.md.

Limits, so that no expression can exhaust the stack or build unrenderable numbers:
- length: at most `PIPELINE_EXPRESSION_MAX_LENGTH` (default 8,192) characters, checked first (compiling
  is superlinear in the text).
- nesting: at most `PIPELINE_EXPRESSION_MAX_DEPTH` (default 64) levels of brackets, parentheses and function
  calls (infix arithmetic counts, as it becomes nested calls) and runs of prefix `!`/`&`, checked on the text
  before any parser recursion; the parsed tree may be at most twice that deep (chained `||`, `|`, `==` ...).
  Checked when the expression is compiled (definition saved), so evaluation cannot recurse deeper either;
  a RecursionError that escapes anyway is reported as the same error.
- numbers: results of arithmetic must be smaller in magnitude than 10 ** `PIPELINE_EXPRESSION_MAX_DIGITS`
  (default 100) and finite; beyond that evaluation raises `ExpressionError`.
- values: every string or structure an expression builds (multi-selects, projections, flatten, function
  results) must fit in a packet (`PIPELINE_MAX_PACKET_BYTES`, counting a shared sub-value each time it
  appears), checked as it is built; beyond that `ValueTooLarge`, which counts against the packet budget.
"""

from __future__ import annotations

import operator
from functools import lru_cache
from typing import Any

import jmespath
from django.conf import settings
from django.core.signals import setting_changed
from jmespath import functions, visitor
from jmespath.exceptions import JMESPathError

from pipelines import arithmetic
from pipelines.budget import EXPRESSION_LIMITS, PACKET_BYTES

# jmespath's own helpers test `isinstance(x, numbers.Number)`, an ABC check that dominates evaluation time.
# Packets are JSON, whose numbers are int and float, so these exact-type versions give the same answers.


def _is_actual_number(x: Any) -> bool:
    return type(x) is int or type(x) is float or (isinstance(x, (int, float)) and not isinstance(x, bool))


def _is_comparable(x: Any) -> bool:
    return _is_actual_number(x) or isinstance(x, str)


def _equals(x: Any, y: Any) -> bool:
    # 0/1 must not equal false/true (Python says they do); jmespath's special case, kept.
    if _is_actual_number(x) and x in (0, 1):
        if isinstance(y, bool):
            return False
    elif _is_actual_number(y) and y in (0, 1) and isinstance(x, bool):
        return False
    return x == y


_SIMPLE_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "array": (list,),
    "object": (dict,),
    "boolean": (bool,),
    "null": (type(None),),
}


def _fast_argument_check(signature: list[dict]) -> Any:
    """A quick `all arguments have allowed types` test for simple signatures, or None when not simple.

    When it says no, the call goes through jmespath's own checks, which raise the proper error.
    """
    if any(arg.get("variadic") for arg in signature):
        return None
    allowed: list[tuple[tuple[type, ...], bool] | None] = []
    for arg in signature:
        types = arg.get("types") or []
        if not types:
            allowed.append(None)  # any type
            continue
        pytypes: tuple[type, ...] = ()
        number = False
        for name in types:
            if name == "number":
                number = True
            elif name in _SIMPLE_TYPES:
                pytypes += _SIMPLE_TYPES[name]
            else:
                return None  # array-number, expref...: leave to jmespath
        allowed.append((pytypes, number))
    count = len(signature)
    if count == 2 and all(spec is not None for spec in allowed):
        (types0, number0), (types1, number1) = allowed  # type: ignore[misc]

        def check2(args: list) -> bool:
            a, b = args
            return (type(a) in types0 or (number0 and _is_actual_number(a))) and (
                type(b) in types1 or (number1 and _is_actual_number(b))
            )

        return check2
    if count == 2 and allowed[0] is not None and allowed[1] is None:
        types0, number0 = allowed[0]

        def check_first(args: list) -> bool:
            a = args[0]
            return len(args) == 2 and (type(a) in types0 or (number0 and _is_actual_number(a)))

        return check_first

    def check(args: list) -> bool:
        if len(args) != count:
            return False
        for value, spec in zip(args, allowed, strict=True):
            if spec is None:
                continue
            pytypes, number = spec
            if type(value) in pytypes or (number and _is_actual_number(value)):
                continue
            return False
        return True

    return check


class ExpressionError(ValueError):
    """An expression could not be evaluated on this packet (a result out of bounds); the step fails.

    `budget` names the run budget it counts against (`pipelines.budget`).
    """

    budget = EXPRESSION_LIMITS


class ValueTooLarge(ExpressionError):
    """The expression built a string or structure too big to ever fit in a packet (see `_sized`)."""

    budget = PACKET_BYTES


def max_depth() -> int:
    """Deepest nesting an expression may have (brackets, calls, infix arithmetic, prefix operators)."""
    return int(getattr(settings, "PIPELINE_EXPRESSION_MAX_DEPTH", 64))


def max_length() -> int:
    """Longest expression text accepted (`PIPELINE_EXPRESSION_MAX_LENGTH`, default 8,192 characters).

    Compiling is superlinear in the text (a 180 KB list of infix sums took 3 s, twice that size four
    times as long), and a definition is compiled when it is saved and again by every process that runs it.
    """
    return int(getattr(settings, "PIPELINE_EXPRESSION_MAX_LENGTH", 8192))


def max_digits() -> int:
    """Arithmetic results must be smaller in magnitude than 10 ** this (integers and floats alike)."""
    return int(getattr(settings, "PIPELINE_EXPRESSION_MAX_DIGITS", 100))


@lru_cache(maxsize=8)
def _bounded(digits: int) -> Any:
    """`check(result)`: the result, or ExpressionError when its magnitude reaches 10**digits or it is not finite.

    Python's ints are unbounded, so repeated `n * n` would grow until rendering the result fails (Python's
    int-to-string limit) or memory runs out; inf and nan are not JSON. One chained comparison covers both
    types (int/float comparison is exact in Python; nan and inf fail it).
    """
    high = 10**digits
    low = -high

    def check(result: Any) -> Any:
        if low < result < high:
            return result
        raise ExpressionError(f"arithmetic result out of range (magnitude 10**{digits} or more, or not finite).")

    return check


@lru_cache(maxsize=1)
def _current_check() -> Any:
    # Read once, not per call: an absent setting makes `getattr(settings, ...)` raise and catch inside
    # Django on every lookup, which would cost more than the arithmetic it guards.
    return _bounded(max_digits())


def _limits_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "PIPELINE_EXPRESSION_MAX_DIGITS":
        _current_check.cache_clear()
    if setting == "PIPELINE_MAX_PACKET_BYTES":
        max_value_bytes.cache_clear()


setting_changed.connect(_limits_changed)


def _checked(result: Any) -> Any:
    return _current_check()(result)


@lru_cache(maxsize=1)
def max_value_bytes() -> int:
    """Largest JSON size (lower bound) a value an expression builds may have: the packet budget.

    A value that could not fit in a packet is of no use to any step, and refusing it while it is built is
    what stops `[@, @] | [@, @] | ...` (each stage doubles a structure that shares its halves, so it costs
    nothing to build and 2**n to copy, serialize or compare) and `concat(@, @) | ...` from exhausting memory.
    """
    return int(getattr(settings, "PIPELINE_MAX_PACKET_BYTES", 256 * 1024))


def _value_bytes(value: Any, limit: int) -> int:
    """A lower bound of `value`'s compact JSON size, counting shared sub-values every time they appear.

    Iterative, with each distinct container measured once (so a deeply shared structure costs its distinct
    nodes, not its expansion), and stopping as soon as the bound passes `limit`.
    """
    sizes: dict[int, int] = {}
    stack: list[tuple[Any, bool]] = [(value, False)]
    keep: list[Any] = []  # measured containers stay alive, so their ids cannot be reused while measuring
    while stack:
        node, children_done = stack.pop()
        kind = type(node)
        if kind is not list and kind is not dict:
            continue
        if id(node) in sizes:
            continue
        items = node.values() if kind is dict else node
        if not children_done:
            stack.append((node, True))
            stack.extend((child, False) for child in items if type(child) in (list, dict) and id(child) not in sizes)
            continue
        total = 2 + max(0, len(node) - 1)
        if kind is dict:
            total += sum(len(key) + 3 for key in node)
        for child in items:
            ckind = type(child)
            total += sizes[id(child)] if ckind is list or ckind is dict else _scalar_bytes(child)
            if total > limit:
                return total
        sizes[id(node)] = total
        keep.append(node)
    return sizes[id(value)] if type(value) in (list, dict) else _scalar_bytes(value)


def _scalar_bytes(value: Any) -> int:
    if type(value) is str:
        return len(value) + 2
    return 4 if value is None or value is True or value is False else 1


def _sized(result: Any) -> Any:
    """`result`, or ExpressionError when it is a string or container too big to ever fit in a packet."""
    kind = type(result)
    if kind is str:
        if len(result) > max_value_bytes():
            raise ValueTooLarge(f"a string of {len(result)} characters is over {max_value_bytes()} bytes.")
    elif kind is list or kind is dict:
        limit = max_value_bytes()
        if _value_bytes(result, limit) > limit:
            raise ValueTooLarge(f"a value it builds is over {limit} bytes as JSON.")
    return result


_ARITHMETIC = {"add": operator.add, "subtract": operator.sub, "multiply": operator.mul}
_DIVISION = {"divide": operator.truediv, "mod": operator.mod}  # null when dividing by zero
_ORDERING = {"lt": operator.lt, "gt": operator.gt, "lte": operator.le, "gte": operator.ge}


class PipelineFunctions(functions.Functions):
    """Arithmetic and string helpers that JMESPath lacks; all pure."""

    @functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_add(self, a: float, b: float) -> float:
        return _checked(_number_op(operator.add, a, b))

    @functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_subtract(self, a: float, b: float) -> float:
        return _checked(_number_op(operator.sub, a, b))

    @functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_multiply(self, a: float, b: float) -> float:
        return _checked(_number_op(operator.mul, a, b))

    @functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_divide(self, a: float, b: float) -> float | None:
        return None if b == 0 else _checked(_number_op(operator.truediv, a, b))

    @functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_mod(self, a: float, b: float) -> float | None:
        return None if b == 0 else _checked(_number_op(operator.mod, a, b))

    @functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_round(self, a: float, digits: float) -> float:
        return _checked(_number_op(lambda x, n: round(x, int(n)), a, digits))

    @functions.signature({"types": ["string", "number", "boolean", "null"], "variadic": True})
    def _func_concat(self, *parts: Any) -> str:
        return _sized("".join("" if p is None else str(p).lower() if isinstance(p, bool) else str(p) for p in parts))

    @functions.signature({"types": []})
    def _func_to_number(self, value: Any) -> Any:
        # jmespath's own uses float(), so to_number('1e999') / to_number('nan') gave values with no JSON form.
        result = super()._func_to_number(value)
        if isinstance(result, float) and (result != result or result in (float("inf"), float("-inf"))):
            return None
        return result

    @functions.signature({"types": ["string"]})
    def _func_upper(self, value: str) -> str:
        return value.upper()

    @functions.signature({"types": ["string"]})
    def _func_lower(self, value: str) -> str:
        return value.lower()

    @functions.signature({"types": [], "variadic": True})
    def _func_coalesce(self, *values: Any) -> Any:
        return next((v for v in values if v is not None), None)


def _number_op(operate: Any, a: Any, b: Any) -> Any:
    # An int too large for a float (10**400 * 1.5, round(x, 1e30)) raises OverflowError, not a ValueError.
    try:
        return operate(a, b)
    except OverflowError as exc:
        raise ExpressionError(f"number out of range: {exc}.") from None


OPTIONS = jmespath.Options(custom_functions=PipelineFunctions())


class _BoundedInterpreter(visitor.TreeInterpreter):
    """jmespath's interpreter, with every node that builds a new value checked by `_sized`.

    Only these nodes can make a value larger than what they read (fields, indexes, slices and pipes select
    from it; literals are bounded by the expression's text), so checking them bounds every value.
    """

    def visit_multi_select_list(self, node: dict, value: Any) -> Any:
        return _sized(super().visit_multi_select_list(node, value))

    def visit_multi_select_dict(self, node: dict, value: Any) -> Any:
        return _sized(super().visit_multi_select_dict(node, value))

    def visit_projection(self, node: dict, value: Any) -> Any:
        return _sized(super().visit_projection(node, value))

    def visit_value_projection(self, node: dict, value: Any) -> Any:
        return _sized(super().visit_value_projection(node, value))

    def visit_filter_projection(self, node: dict, value: Any) -> Any:
        return _sized(super().visit_filter_projection(node, value))

    def visit_flatten(self, node: dict, value: Any) -> Any:
        return _sized(super().visit_flatten(node, value))

    def visit_function_expression(self, node: dict, value: Any) -> Any:
        return _sized(super().visit_function_expression(node, value))


class Expression:
    """A JMESPath expression compiled once into nested Python closures (see `_closure`).

    jmespath's tree interpreter dispatches on every node at every evaluation; the closures do that work
    once, which makes conditions and routes several times faster. Semantics are the interpreter's own
    (same equality, ordering, truthiness and function type checks); node types without a closure fall back
    to the interpreter for the whole expression.
    """

    __slots__ = ("expression", "_parsed", "search")

    def __init__(self, text: str) -> None:
        self.expression = text
        self._parsed = jmespath.compile(text)
        # Chains (`a || b || ...`, `a | b | ...`) parse without recursion but make a deep tree, which the
        # closure compiler and every evaluation would then recurse through.
        limit = 2 * max_depth()
        if _tree_depth(self._parsed.parsed, limit) > limit:
            raise ExpressionDepthError(f"the parsed expression nests more than {limit} levels (chained operators).")
        try:
            self.search = _closure(self._parsed.parsed)
        except _Unsupported:
            self.search = self._interpret

    def _interpret(self, value: Any) -> Any:
        return _BoundedInterpreter(OPTIONS).visit(self._parsed.parsed, value)


class ExpressionDepthError(ValueError):
    """The expression nests deeper than the limit (refused when compiled, before any deep recursion)."""


def _tree_depth(node: Any, limit: int) -> int:
    """Depth of a parsed tree, iteratively, stopping once it passes `limit`."""
    deepest = 0
    stack = [(node, 1)]
    while stack:
        current, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            break
        for child in current.get("children", ()):
            if isinstance(child, dict):
                stack.append((child, depth + 1))
    return deepest


_QUOTES = {"'", '"', "`"}
_OPEN = set("([{")
_CLOSE = set(")]}")
_PREFIX = set("!&")


def _text_depth(text: str, limit: int) -> str | None:
    """Why `text` nests too deeply for the recursive parts (arithmetic rewrite, jmespath's parser), or None.

    Counts bracket nesting and runs of prefix operators (`!!!!a`, `&&&a`) outside quoted runs; a single
    linear pass, done once per compile.
    """
    depth = run = 0
    i, end = 0, len(text)
    while i < end:
        char = text[i]
        if char in _QUOTES:  # skip the quoted run (an unclosed one is the parser's to report)
            i += 1
            while i < end and text[i] != char:
                i += 2 if text[i] == "\\" else 1
        elif char in _OPEN:
            depth += 1
            if depth > limit:
                return f"nests more than {limit} levels of brackets, parentheses or function calls"
        elif char in _CLOSE:
            depth -= 1
        if char in _PREFIX:
            run += 1
            if run > limit:
                return f"has more than {limit} prefix operators in a row"
        elif not char.isspace():
            run = 0
        i += 1
    return None


class _Unsupported(Exception):
    """A node type the closure compiler leaves to the interpreter."""


def _is_false(value: Any) -> bool:
    return value == "" or value == [] or value == {} or value is None or value is False


def _field_path(keys: tuple[str, ...]) -> Any:
    """`a.b.c`: dict lookups, None as soon as a value is not an object (as the interpreter answers)."""
    if len(keys) == 2:
        first, second = keys

        def two(v: Any) -> Any:
            v = v.get(first) if type(v) is dict else None
            return v.get(second) if type(v) is dict else None

        return two

    def walk(v: Any) -> Any:
        for key in keys:
            if type(v) is not dict:
                return None
            v = v.get(key)
        return v

    return walk


def _plain_equality(children: list[dict]) -> tuple[Any, Any, bool] | None:
    """For `x == <literal>`: (closure for x, literal, compare by identity) when no 0/1-vs-bool case can arise.

    Against a string, null, a container or a number other than 0/1, jmespath's equality is Python's `==`;
    against true/false it holds only for that same boolean (1 and 0 never equal them).
    """
    for literal_index in (1, 0):
        node = children[literal_index]
        if node["type"] != "literal":
            continue
        literal = node["value"]
        other = _closure(children[1 - literal_index])
        if isinstance(literal, bool):
            return other, literal, True
        if literal is None or isinstance(literal, (str, list, dict)):
            return other, literal, False
        if _is_actual_number(literal) and literal not in (0, 1):
            return other, literal, False
        return None
    return None


def _closure(node: dict) -> Any:  # noqa: C901 - one branch per node type mirrors jmespath's visitor
    kind = node["type"]
    children = node.get("children", [])
    if kind == "field":
        key = node["value"]
        return lambda v: v.get(key) if type(v) is dict else None
    if kind == "subexpression" and all(child["type"] == "field" for child in children):
        return _field_path(tuple(child["value"] for child in children))
    if kind in ("subexpression", "index_expression", "pipe"):
        steps = [_closure(child) for child in children]
        if len(steps) == 2:
            first, second = steps
            return lambda v: second(first(v))

        def chain(v: Any) -> Any:
            for step in steps:
                v = step(v)
            return v

        return chain
    if kind in ("current", "identity"):
        return lambda v: v
    if kind == "literal":
        literal = node["value"]
        return lambda v: literal
    if kind == "comparator":
        left, right = _closure(children[0]), _closure(children[1])
        op = node["value"]
        if op in ("eq", "ne"):
            plain = _plain_equality(children)
            if plain is not None:
                side, literal, same = plain
                if op == "eq":
                    return (lambda v: side(v) is literal) if same else (lambda v: side(v) == literal)
                return (lambda v: side(v) is not literal) if same else (lambda v: side(v) != literal)
        if op == "eq":
            return lambda v: _equals(left(v), right(v))
        if op == "ne":
            return lambda v: not _equals(left(v), right(v))
        compare = _ORDERING[op]
        if children[1]["type"] == "literal" and _is_comparable(children[1]["value"]):
            literal = children[1]["value"]

            def against_literal(v: Any) -> Any:
                a = left(v)
                return compare(a, literal) if _is_comparable(a) else None

            return against_literal

        def ordered(v: Any) -> Any:
            a, b = left(v), right(v)
            if not (_is_comparable(a) and _is_comparable(b)):
                return None
            return compare(a, b)

        return ordered
    if kind == "function_expression":
        name = node["value"]
        args = [_closure(child) for child in children]
        functions_ = OPTIONS.custom_functions
        call = functions_.call_function
        if any(child["type"] == "expref" for child in children):
            raise _Unsupported(kind)
        spec = functions_.FUNCTION_TABLE.get(name)
        fast = _fast_argument_check(spec["signature"]) if spec else None
        if fast is None:
            return lambda v: _sized(call(name, [arg(v) for arg in args]))
        function = spec["function"]
        if len(args) == 2 and name in _ARITHMETIC:
            first, second = args
            operate = _ARITHMETIC[name]
            high = 10 ** max_digits()
            low = -high

            def arithmetic(v: Any) -> Any:
                a, b = first(v), second(v)
                if _is_actual_number(a) and _is_actual_number(b):
                    try:
                        result = operate(a, b)
                    except OverflowError as exc:  # a huge int meeting a float
                        raise ExpressionError(f"number out of range: {exc}.") from None
                    if low < result < high:  # inline: this is the hot path
                        return result
                    return _checked(result)
                return call(name, [a, b])  # raises jmespath's own type error

            return arithmetic
        if len(args) == 2 and name in _DIVISION:
            first, second = args
            operate = _DIVISION[name]
            high = 10 ** max_digits()
            low = -high

            def division(v: Any) -> Any:
                a, b = first(v), second(v)
                if _is_actual_number(a) and _is_actual_number(b):
                    if b == 0:
                        return None
                    try:
                        result = operate(a, b)
                    except OverflowError as exc:  # an int too large for a float
                        raise ExpressionError(f"number out of range: {exc}.") from None
                    if low < result < high:
                        return result
                    return _checked(result)
                return call(name, [a, b])

            return division
        if len(args) == 2 and name == "contains":
            first, second = args

            def contains(v: Any) -> Any:
                subject = first(v)
                if type(subject) is list:
                    return second(v) in subject
                return call(name, [subject, second(v)])

            return contains
        if len(args) == 2:
            first, second = args

            def invoke2(v: Any) -> Any:
                values = [first(v), second(v)]
                if fast(values):
                    return _sized(function(functions_, *values))
                return call(name, values)

            return invoke2

        def invoke(v: Any) -> Any:
            values = [arg(v) for arg in args]
            if fast(values):
                return _sized(function(functions_, *values))
            return call(name, values)  # raises jmespath's own type error

        return invoke
    if kind == "index":
        index = node["value"]

        def at(v: Any) -> Any:
            if not isinstance(v, list):
                return None
            try:
                return v[index]
            except IndexError:
                return None

        return at
    if kind == "slice":
        window = slice(*children)
        return lambda v: v[window] if isinstance(v, list) else None
    if kind == "key_val_pair":
        return _closure(children[0])
    if kind == "multi_select_dict":
        pairs = [(child["value"], _closure(child)) for child in children]
        return lambda v: None if v is None else _sized({key: fn(v) for key, fn in pairs})
    if kind == "multi_select_list":
        items = [_closure(child) for child in children]
        return lambda v: None if v is None else _sized([fn(v) for fn in items])
    if kind == "or_expression":
        left, right = _closure(children[0]), _closure(children[1])

        def either(v: Any) -> Any:
            matched = left(v)
            return right(v) if _is_false(matched) else matched

        return either
    if kind == "and_expression":
        left, right = _closure(children[0]), _closure(children[1])

        def both(v: Any) -> Any:
            matched = left(v)
            return matched if _is_false(matched) else right(v)

        return both
    if kind == "not_expression":
        inner = _closure(children[0])

        def negate(v: Any) -> Any:
            result = inner(v)
            if _is_actual_number(result) and result == 0:
                return False
            return not result

        return negate
    if kind in ("projection", "value_projection"):
        base, each = _closure(children[0]), _closure(children[1])
        values = kind == "value_projection"

        def project(v: Any) -> Any:
            source = base(v)
            if values:
                if not isinstance(source, dict):
                    return None
                source = source.values()
            elif not isinstance(source, list):
                return None
            return _sized([r for r in (each(e) for e in source) if r is not None])

        return project
    if kind == "filter_projection":
        base, each, test = _closure(children[0]), _closure(children[1]), _closure(children[2])

        def keep(v: Any) -> Any:
            source = base(v)
            if not isinstance(source, list):
                return None
            return _sized([r for r in (each(e) for e in source if not _is_false(test(e))) if r is not None])

        return keep
    if kind == "flatten":
        base = _closure(children[0])

        def flatten(v: Any) -> Any:
            source = base(v)
            if not isinstance(source, list):
                return None
            merged: list = []
            for element in source:
                if isinstance(element, list):
                    merged.extend(element)
                else:
                    merged.append(element)
            return _sized(merged)

        return flatten
    raise _Unsupported(kind)


def compile_expression(expr: Any) -> Expression:
    """Compile a JMESPath expression; raises ValueError with the parser's message.

    Unknown function names are reported here, not at run time (JMESPath itself finds them only on
    evaluation).
    """
    if not isinstance(expr, str) or not expr.strip():
        raise ValueError("An expression is a non-empty JMESPath string.")
    shown = repr(expr) if len(expr) <= 120 else repr(expr[:100]) + f"... ({len(expr)} characters)"
    limit = max_depth()
    problem = _text_depth(expr, limit)  # one linear pass: the more specific message for deep texts
    if problem:
        raise ExpressionDepthError(f"Invalid JMESPath {shown}: the expression {problem}.")
    if len(expr) > max_length():
        raise ExpressionDepthError(f"Invalid JMESPath {shown}: longer than {max_length()} characters.")
    try:
        rewritten = arithmetic.rewrite(expr)
        # Infix arithmetic becomes nested calls: a chain of 100 `+` is 100 levels once rewritten.
        problem = _text_depth(rewritten, limit) if rewritten is not expr else None
        if problem:
            raise ExpressionDepthError(f"the expression {problem} (infix arithmetic counts as nested calls).")
        compiled = Expression(rewritten)
    except ExpressionDepthError as exc:
        raise ExpressionDepthError(f"Invalid JMESPath {shown}: {exc}") from None
    except (JMESPathError, arithmetic.ArithmeticSyntaxError) as exc:
        raise ValueError(f"Invalid JMESPath {shown}: {str(exc).splitlines()[0][:300]}") from None
    except RecursionError:
        # Backstop only: the checks above keep every known construct well inside the stack.
        raise ExpressionDepthError(f"Invalid JMESPath {shown}: the expression nests too deeply.") from None
    compiled.expression = expr  # as written; the parsed form holds the rewritten arithmetic
    bad_literal = _unstorable_literal(compiled._parsed.parsed)
    if bad_literal:
        raise ValueError(f"Invalid JMESPath {shown}: a literal holds {bad_literal}, which a packet cannot carry.")
    unknown = sorted(_function_names(compiled._parsed.parsed) - set(OPTIONS.custom_functions.FUNCTION_TABLE))
    if unknown:
        raise ValueError(f"Invalid JMESPath {shown}: unknown function(s) {', '.join(unknown)}.")
    return compiled


def _function_names(node: Any) -> set[str]:
    names: set[str] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            if current.get("type") == "function_expression":
                names.add(current.get("value"))
            stack.extend(current.get("children", []))
        elif isinstance(current, list):
            stack.extend(current)
    return names


def _unstorable_literal(node: Any) -> str | None:
    """What a literal (`` `"\\u0000"` ``, `` `1e999` ``) holds that no packet may (NUL, non-finite numbers), or None.

    The step's JSON passed the input boundary with the escape as text; JMESPath decodes it into the value.
    """
    from controlplane.jsonbounds import nonfinite_path, nul_path

    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            if current.get("type") == "literal":
                value = current.get("value")
                if nul_path({"v": value}) is not None:
                    return "a NUL character"
                if nonfinite_path({"v": value}) is not None:
                    return "a non-finite number"
            stack.extend(current.get("children", []))
        elif isinstance(current, list):
            stack.extend(current)
    return None
