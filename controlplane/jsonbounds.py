"""Bounded JSON: parsing and depth checks that cannot recurse out, with no DRF import.

Services, file imports and Celery tasks use these too; keeping DRF out of this module keeps its
serializer machinery out of the worker and beat processes.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings


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
