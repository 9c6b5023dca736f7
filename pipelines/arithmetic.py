"""Infix arithmetic for JMESPath: `payload.price * payload.qty` is rewritten to `multiply(...)` before parsing.

Standard JMESPath (the jmespath package) has no arithmetic operators; JMESPath Community Edition adds
`+ - * / %`. This module gives pipelines the same syntax by rewriting the text into calls of the pure
functions `add`, `subtract`, `multiply`, `divide` and `mod` (pipelines/expressions.py), so the parser,
the closure compiler and the function type checks stay the standard ones.

Operators bind tighter than comparisons, `&&`, `||` and `|`, and looser than sub-expressions and
projections; `* / %` before `+ -`, left to right; parentheses group. An operator counts only in a binary
position (right after a complete operand), so wildcards (`a[*]`, `a.*`, `*`), slices (`[1:-1]`) and
quoted or literal text are left as they are. Arithmetic works at any nesting: in parentheses, filters,
function arguments and multiselects.
"""

from __future__ import annotations

from collections.abc import Iterator

FUNCTIONS = {"+": "add", "-": "subtract", "*": "multiply", "/": "divide", "%": "mod"}
_TIGHT = {"*", "/", "%"}
# Boundaries that end an arithmetic chain: lower-precedence operators and list/hash/filter punctuation.
_SEPARATORS = ("||", "&&", "==", "!=", "<=", ">=", "|", "<", ">", ",", ":", "?")
_OPENERS = {"(": ")", "[": "]", "{": "}"}
_QUOTES = {"'", '"', "`"}
# A character that ends a complete operand: after it, an operator character is binary.
_OPERAND_END = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_])}'\"`@")


class ArithmeticSyntaxError(ValueError):
    """An operator without an operand on one side, or unbalanced brackets or quotes."""


def rewrite(text: str) -> str:
    """`text` with every infix arithmetic operation turned into a function call (unchanged if it has none)."""
    if not any(op in text for op in FUNCTIONS):
        return text
    return _rewrite_level(text)


def _skip_quoted(text: str, start: int) -> int:
    """Index just past the quoted run that starts at `start` (backslash escapes honoured)."""
    quote, i = text[start], start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            return i + 1
        i += 1
    raise ArithmeticSyntaxError(f"Unclosed {quote} in {text!r}.")


def _units(text: str) -> Iterator[tuple[int, str, bool]]:
    """`(index, unit, atomic)` over `text`: a quoted run or a whole bracketed group is one atomic unit,
    anything else a single character."""
    i = 0
    while i < len(text):
        char = text[i]
        if char in _QUOTES:
            end = _skip_quoted(text, i)
        elif char in _OPENERS:
            end = _matching(text, i) + 1
        else:
            yield i, char, False
            i += 1
            continue
        yield i, text[i:end], True
        i = end


def _rewrite_level(text: str) -> str:
    """Rewrite one nesting level: brackets recursively, then each separator-delimited segment."""
    pieces: list[str] = []  # separators and rewritten segments, in order
    segment: list[str] = []
    skip_to = 0
    for i, unit, atomic in _units(text):
        if i < skip_to:  # the rest of a two-character separator
            continue
        if atomic:
            grouped = unit[0] in _OPENERS
            segment.append(unit[0] + _rewrite_level(unit[1:-1]) + unit[-1] if grouped else unit)
            continue
        separator = next((s for s in _SEPARATORS if text.startswith(s, i)), None)
        if separator is not None:
            pieces += [_rewrite_segment("".join(segment)), separator]
            segment, skip_to = [], i + len(separator)
            continue
        segment.append(unit)
    pieces.append(_rewrite_segment("".join(segment)))
    return "".join(pieces)


def _matching(text: str, start: int) -> int:
    """Index of the bracket closing the one at `start`, skipping quoted runs and nested brackets."""
    stack = [_OPENERS[text[start]]]
    i = start + 1
    while i < len(text):
        char = text[i]
        if char in _QUOTES:
            i = _skip_quoted(text, i)
            continue
        if char in _OPENERS:
            stack.append(_OPENERS[char])
        elif char == stack[-1]:
            stack.pop()
            if not stack:
                return i
        elif char in ")]}":
            break
        i += 1
    raise ArithmeticSyntaxError(f"Unbalanced brackets in {text!r}.")


def _rewrite_segment(segment: str) -> str:
    """Split a segment at binary operators (outside quotes and brackets) and nest the function calls."""
    operands: list[str] = []
    operators: list[str] = []
    current: list[str] = []
    last = ""  # last non-space character of the current operand
    for _, unit, atomic in _units(segment):
        if not atomic and unit in FUNCTIONS and last in _OPERAND_END:
            operands.append("".join(current))
            operators.append(unit)
            current, last = [], ""
            continue
        current.append(unit)
        if atomic or not unit.isspace():
            last = unit[-1]
    operands.append("".join(current))
    if not operators:
        return segment
    leading = segment[: len(segment) - len(segment.lstrip())]
    trailing = segment[len(segment.rstrip()) :]
    stripped = [operand.strip() for operand in operands]
    if not all(stripped):
        raise ArithmeticSyntaxError(f"An arithmetic operator needs an operand on each side in {segment.strip()!r}.")
    return leading + _nest(stripped, operators) + trailing


def _nest(operands: list[str], operators: list[str]) -> str:
    """Apply precedence (`* / %` first) and left associativity, producing nested function calls."""
    terms, joins = [operands[0]], []
    for operator, operand in zip(operators, operands[1:], strict=True):
        if operator in _TIGHT:
            terms[-1] = f"{FUNCTIONS[operator]}({terms[-1]}, {operand})"
        else:
            joins.append(operator)
            terms.append(operand)
    result = terms[0]
    for operator, term in zip(joins, terms[1:], strict=True):
        result = f"{FUNCTIONS[operator]}({result}, {term})"
    return result
