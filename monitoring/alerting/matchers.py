"""Alertmanager label matchers: validation (field errors) and matching. Regexes run on RE2 (linear time)."""

from __future__ import annotations

import re
from typing import Any

from controlplane.patterns import PatternError, compile_user_regex

# \A...\Z, not ^...$: `$` also matches before a final newline ("team\n" is not a label name).
LABEL_NAME = re.compile(r"\A[A-Za-z_][A-Za-z0-9_.]{0,99}\Z")  # at most 100 characters, as matchers
OPS = ("=", "!=", "=~", "!~")
MAX_MATCHERS = 20
MAX_VALUE = 500


def matcher_errors(matchers: Any) -> list[str]:
    """Messages for a matcher list that is not a non-empty list of {name, op, value}, else []."""
    if not isinstance(matchers, list) or not matchers:
        return ["Give a non-empty list of matchers {name, op, value}."]
    if len(matchers) > MAX_MATCHERS:
        return [f"At most {MAX_MATCHERS} matchers."]
    problems: list[str] = []
    for index, matcher in enumerate(matchers):
        where = f"matcher {index + 1}"
        if not isinstance(matcher, dict) or set(matcher) - {"name", "op", "value"}:
            problems.append(f"{where}: an object with name, op and value only.")
            continue
        name, op, value = matcher.get("name"), matcher.get("op", "="), matcher.get("value")
        if not isinstance(name, str) or not LABEL_NAME.match(name) or len(name) > 100:
            problems.append(f"{where}: the name must be a label name such as service or severity.")
        if op not in OPS:
            problems.append(f"{where}: op must be one of {', '.join(OPS)}.")
        if not isinstance(value, str) or len(value) > MAX_VALUE or "\x00" in value:
            problems.append(f"{where}: the value must be a string of at most {MAX_VALUE} characters.")
        elif op in ("=~", "!~"):
            try:
                compile_user_regex(value)
            except PatternError as exc:
                problems.append(f"{where}: {exc}")
    if not problems and all(_matches_empty(m) for m in matchers):
        # Alertmanager's rule: a silence must not match every alert (it would hide all of them).
        problems.append("At least one matcher must not match the empty string (this silence would match everything).")
    return problems


def _matches_empty(matcher: dict[str, str]) -> bool:
    return matcher_matches(matcher, {})


def matcher_matches(matcher: dict[str, str], labels: dict[str, str]) -> bool:
    """Whether one matcher accepts `labels` (a missing label reads as the empty string, as in Alertmanager)."""
    value = str(labels.get(matcher["name"], ""))
    op = matcher.get("op", "=")
    if op == "=":
        return value == matcher["value"]
    if op == "!=":
        return value != matcher["value"]
    found = bool(compile_user_regex(matcher["value"]).fullmatch(value))
    return found if op == "=~" else not found


def matchers_match(matchers: list[dict[str, str]], labels: dict[str, str]) -> bool:
    """Whether every matcher accepts `labels`."""
    return all(matcher_matches(matcher, labels) for matcher in matchers)
