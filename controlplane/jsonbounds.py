"""Bounded JSON: parsing, depth and NUL checks that cannot recurse out, with no DRF import.

Services, file imports and Celery tasks use these too; keeping DRF out of this module keeps its
serializer machinery out of the worker and beat processes.
"""

from __future__ import annotations

import json
import math
from typing import Any

from django.conf import settings

NUL = "\x00"
# The only way a NUL reaches a string in valid JSON is this escape (raw control characters are refused
# by the parser), so text without it needs no walk.
JSON_NUL_ESCAPE = "\\u0000"


class NulCharacterError(ValueError):
    """A string (or mapping key) holds a NUL character, which PostgreSQL cannot store in text or jsonb."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"NUL characters are not allowed (at {path}).")


def json_depth_exceeds(value: Any, limit: int) -> bool:
    """True when `value` nests deeper than `limit` containers; iterative, so it cannot recurse out."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in node.values() if isinstance(child, (dict, list)))
        elif isinstance(node, list):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in node if isinstance(child, (dict, list)))
    return False


def printable_key(key: Any) -> str:
    """A key as it may appear in an error message or log line: NULs shown as `\\u0000`."""
    return str(key).replace(NUL, JSON_NUL_ESCAPE)


def nul_path(value: Any, root: str = "") -> str | None:
    """The dotted path of the first key or string holding a NUL in `value` (iterative), else None.

    A NUL inside a key is reported at that key; the root string itself is reported as `root` (or `body`).
    """
    stack: list[tuple[str, Any]] = [(root, value)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, str):
            if NUL in node:
                return path or "body"
        elif isinstance(node, dict):
            for key, child in node.items():
                child_path = f"{path}.{printable_key(key)}" if path else printable_key(key)
                if isinstance(key, str) and NUL in key:
                    return child_path
                stack.append((child_path, child))
        elif isinstance(node, (list, tuple)):
            stack.extend((f"{path}.{index}" if path else str(index), child) for index, child in enumerate(node))
    return None


# Integers Python can still write as decimal text (its default limit is 4,300 digits; 14,000 bits is
# about 4,214): a hexadecimal YAML integer can be far longer and then fails when stored or rendered.
MAX_INT_BITS = 14_000


def nonfinite_path(value: Any) -> str | None:
    """The dotted path of the first number JSON cannot carry (NaN, infinity, a huge integer), else None.

    JSON has no NaN or infinity and PostgreSQL's jsonb refuses them; YAML (`.inf`, `.nan`) and TOML
    (`inf`, `nan`) can write them, Python's JSON parser reads `1e999` as infinity, and YAML's `0x...`
    integers have no length limit.
    """
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, float):
            if not math.isfinite(node):
                return path or "body"
        elif isinstance(node, int) and not isinstance(node, bool):
            if node.bit_length() > MAX_INT_BITS:
                return path or "body"
        elif isinstance(node, dict):
            stack.extend((f"{path}.{printable_key(k)}" if path else printable_key(k), v) for k, v in node.items())
        elif isinstance(node, (list, tuple)):
            stack.extend((f"{path}.{index}" if path else str(index), child) for index, child in enumerate(node))
    return None


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"Number out of range: {text[:40]}")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value.")


def loads_bounded(raw: bytes | str, *, max_depth: int | None = None) -> Any:
    """Parse JSON text; `ValueError` on syntax errors, non-finite numbers, nesting deeper than `max_depth`
    and NUL characters.

    NUL is refused here (as `NulCharacterError`, naming the path) because every consumer of parsed input
    ends up in PostgreSQL text/jsonb columns, which refuse it with a database error.
    """
    limit = max_depth or settings.API_JSON_MAX_DEPTH
    try:
        # NaN/Infinity literals and numbers that overflow to infinity are not JSON (jsonb refuses them).
        value = json.loads(raw, parse_float=_finite_float, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError(f"JSON nests deeper than {limit} levels.") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"Malformed JSON: {exc}") from None
    if json_depth_exceeds(value, limit):
        raise ValueError(f"JSON nests deeper than {limit} levels.")
    # Bytes may be UTF-16/32 (json.loads detects it), where NUL bytes are normal: walk those too.
    if isinstance(raw, str):
        suspect = JSON_NUL_ESCAPE in raw
    else:
        suspect = JSON_NUL_ESCAPE.encode() in raw or b"\x00" in raw
    if suspect:
        path = nul_path(value)
        if path is not None:
            raise NulCharacterError(path)
    return value
