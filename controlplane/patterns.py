"""User-supplied regular expressions, compiled for a linear-time engine (RE2) or refused.

Every regex that comes from a user — `pattern` rules, JSON Schema `pattern` / `patternProperties` (rules and
pipeline validate steps), `format: regex` values — goes through `compile_user_regex`. RE2 matches in time
linear in the input, so a pattern such as `(a+)+$` cannot backtrack for minutes; in exchange it has no
backreferences (`\\1`) and no lookaround (`(?=...)`), and such patterns are refused with a clear message
when the rule or step is saved. `\\w`, `\\d`, `\\s` and `\\b` are ASCII classes in RE2 (`pattern` rules may
use `\\pL`, `\\pN` for Unicode letters and digits; JSON Schema patterns must also parse as Python regexes,
which the metaschema check and fastjsonschema's code generation require).

Budget: a compiled pattern is at most `USER_REGEX_MAX_LENGTH` characters, its program at most
`USER_REGEX_MAX_MEMORY` bytes, and it is matched against at most `USER_REGEX_MAX_INPUT_CHARS` characters of
input; longer input does not match. Captures are off (nothing here reads groups), which keeps RE2 on its
DFA: a 1 MiB input takes milliseconds whatever the pattern.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import re2
from django.conf import settings
from re2 import _re2


class PatternError(ValueError):
    """A user regex that is too long, does not compile, or needs a feature RE2 does not have."""


def max_pattern_length() -> int:
    """Longest user regex accepted."""
    return int(getattr(settings, "USER_REGEX_MAX_LENGTH", 1000))


def max_input_chars() -> int:
    """Longest string a user regex is matched against; longer strings never match."""
    return int(getattr(settings, "USER_REGEX_MAX_INPUT_CHARS", 1024 * 1024))


def max_program_bytes() -> int:
    """Memory RE2 may use for one compiled pattern (refused beyond it rather than slowed down)."""
    return int(getattr(settings, "USER_REGEX_MAX_MEMORY", 8 * 1024 * 1024))


# Matching goes through the binding's RE2 class directly: the `re2` module's Python wrapper builds a match
# object with decoded offsets on every call (several microseconds), and nothing here reads a match.
_SEARCH = _re2.RE2.Anchor.UNANCHORED
_MATCH = _re2.RE2.Anchor.ANCHOR_START
_FULLMATCH = _re2.RE2.Anchor.ANCHOR_BOTH
_NO_MATCH = (-1, -1)


class UserPattern:
    """A compiled user regex. `search`, `match` and `fullmatch` answer True or None, like `re`'s truthiness.

    Input longer than the budget answers None (no match), so callers that only test truthiness — the
    generated fastjsonschema code among them — need no special case.
    """

    __slots__ = ("pattern", "_regex", "_limit")

    def __init__(self, pattern: str, regex: Any, limit: int) -> None:
        self.pattern = pattern
        self._regex = regex
        self._limit = limit

    def _test(self, anchor: Any, text: str) -> bool | None:
        if len(text) > self._limit:
            return None
        # JSON may carry lone surrogates, which strict UTF-8 refuses; RE2 matches invalid bytes safely.
        data = text.encode("utf-8", "surrogatepass")
        return True if self._regex.Match(anchor, data, 0, len(data))[0] != _NO_MATCH else None

    def search(self, text: str) -> bool | None:
        return self._test(_SEARCH, text)

    def match(self, text: str) -> bool | None:
        return self._test(_MATCH, text)

    def fullmatch(self, text: str) -> bool | None:
        return self._test(_FULLMATCH, text)

    def fits(self, text: str) -> bool:
        """Whether `text` is within the input budget (a rule reports the length rather than a mismatch)."""
        return len(text) <= self._limit

    def __repr__(self) -> str:
        return f"UserPattern({self.pattern!r})"


def _explain(message: str) -> str:
    # RE2's messages name the construct ("invalid escape sequence: \1", "invalid perl operator: (?=");
    # say why it is refused so the user knows it is the engine, not a typo.
    hint = ""
    if "escape sequence" in message and any(f"\\{d}" in message for d in "123456789"):
        hint = " (backreferences are not supported: user patterns run on RE2, a linear-time engine)"
    elif "perl operator" in message and any(op in message for op in ("(?=", "(?!", "(?<")):
        hint = " (lookahead and lookbehind are not supported: user patterns run on RE2, a linear-time engine)"
    elif "\\Z" in message:
        hint = " (use \\z or $ for the end of the text)"
    return f"{message}{hint}"


@lru_cache(maxsize=1024)
def _compile(pattern: str, limit: int, memory: int) -> UserPattern:
    options = re2.Options()
    options.log_errors = False  # RE2 would print every refused pattern to stderr
    options.never_capture = True  # no group is ever read; without captures RE2 stays on its fast DFA
    options.max_mem = memory
    regex = _re2.RE2(pattern.encode("utf-8", "surrogatepass"), options)
    if not regex.ok():
        raise PatternError(_explain(regex.error().decode("utf-8", "replace")))
    return UserPattern(pattern, regex, limit)


def compile_user_regex(pattern: Any, *, cache: bool = True) -> UserPattern:
    """Compile a user regex for RE2; raises PatternError (a ValueError) with a message fit for a 400.

    `cache=False` for patterns that arrive as data (a `format: regex` value): each may hold up to
    `USER_REGEX_MAX_MEMORY`, so a stream of distinct ones must not fill the cache.
    """
    if not isinstance(pattern, str):
        raise PatternError("a regular expression must be a string.")
    if len(pattern) > max_pattern_length():
        raise PatternError(f"a regular expression may have at most {max_pattern_length()} characters.")
    if "\x00" in pattern:
        raise PatternError("a regular expression must not contain NUL characters.")
    compile_ = _compile if cache else _compile.__wrapped__
    return compile_(pattern, max_input_chars(), max_program_bytes())


def regex_problem(pattern: Any) -> str | None:
    """The reason `pattern` is refused, or None when it compiles."""
    try:
        compile_user_regex(pattern)
    except PatternError as exc:
        return str(exc)
    return None
