"""JMESPath, the one expression language for conditions, `set`/`map` expressions, filters and routes.

Standard JMESPath has no arithmetic operators, so a few pure functions are added: `add`, `subtract`,
`multiply`, `divide`, `mod`, `round`, `concat`, `upper`, `lower`, `coalesce`. They are documented in
docs/pipelines.md; e.g. `multiply(payload.price, payload.qty)`.
"""

from __future__ import annotations

from typing import Any

import jmespath
from jmespath import functions
from jmespath.exceptions import JMESPathError


class PipelineFunctions(functions.Functions):
    """Arithmetic and string helpers that JMESPath lacks; all pure."""

    @functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_add(self, a: float, b: float) -> float:
        return a + b

    @functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_subtract(self, a: float, b: float) -> float:
        return a - b

    @functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_multiply(self, a: float, b: float) -> float:
        return a * b

    @functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_divide(self, a: float, b: float) -> float | None:
        return None if b == 0 else a / b

    @functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_mod(self, a: float, b: float) -> float | None:
        return None if b == 0 else a % b

    @functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_round(self, a: float, digits: float) -> float:
        return round(a, int(digits))

    @functions.signature({"types": ["string", "number", "boolean", "null"], "variadic": True})
    def _func_concat(self, *parts: Any) -> str:
        return "".join("" if p is None else str(p).lower() if isinstance(p, bool) else str(p) for p in parts)

    @functions.signature({"types": ["string"]})
    def _func_upper(self, value: str) -> str:
        return value.upper()

    @functions.signature({"types": ["string"]})
    def _func_lower(self, value: str) -> str:
        return value.lower()

    @functions.signature({"types": [], "variadic": True})
    def _func_coalesce(self, *values: Any) -> Any:
        return next((v for v in values if v is not None), None)


OPTIONS = jmespath.Options(custom_functions=PipelineFunctions())


class Expression:
    """A compiled JMESPath expression evaluated with the pipeline functions."""

    __slots__ = ("expression", "_parsed")

    def __init__(self, text: str) -> None:
        self.expression = text
        self._parsed = jmespath.compile(text)

    def search(self, value: Any) -> Any:
        return self._parsed.search(value, options=OPTIONS)


def compile_expression(expr: Any) -> Expression:
    """Compile a JMESPath expression; raises ValueError with the parser's message.

    Unknown function names are reported here, not at run time (JMESPath itself finds them only on
    evaluation).
    """
    if not isinstance(expr, str) or not expr.strip():
        raise ValueError("An expression is a non-empty JMESPath string.")
    try:
        compiled = Expression(expr)
    except JMESPathError as exc:
        raise ValueError(f"Invalid JMESPath {expr!r}: {str(exc).splitlines()[0]}") from None
    unknown = sorted(_function_names(compiled._parsed.parsed) - set(OPTIONS.custom_functions.FUNCTION_TABLE))
    if unknown:
        raise ValueError(f"Invalid JMESPath {expr!r}: unknown function(s) {', '.join(unknown)}.")
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
