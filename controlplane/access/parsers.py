"""A JSON parser with a nesting-depth bound, so hostile bodies get a 400 instead of a RecursionError."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


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


def loads_bounded(raw: bytes | str, *, max_depth: int | None = None) -> Any:
    """Parse JSON text, raising `ValueError` on syntax errors and on nesting deeper than `max_depth`."""
    limit = max_depth or settings.API_JSON_MAX_DEPTH
    try:
        value = json.loads(raw)
    except RecursionError:
        raise ValueError(f"JSON nests deeper than {limit} levels.") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"Malformed JSON: {exc}") from None
    if json_depth_exceeds(value, limit):
        raise ValueError(f"JSON nests deeper than {limit} levels.")
    return value


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser with a depth limit and a clear message for malformed bodies."""

    def parse(self, stream, media_type=None, parser_context=None):  # type: ignore[no-untyped-def]
        raw = stream.read() if stream is not None else b""
        if not raw:
            return {}
        try:
            return loads_bounded(raw)
        except ValueError as exc:
            raise ParseError(str(exc)) from None
