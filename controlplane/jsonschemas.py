"""User JSON Schemas (json_schema rules, pipeline validate steps): local references only, RE2 patterns.

`schema_problems(schema)` lists what is refused when a rule or step is saved; `compile_schema(schema)` gives
the fastjsonschema validator. Two layers, so that neither alone has to be perfect:

1. A static walk before anything compiles. Only references inside the schema itself are resolved: every
   `$ref` / `$dynamicRef` / `$recursiveRef` must be a fragment (`#`, `#/$defs/x`); a nested `$id` (which
   would move the base URI elsewhere) is refused; `$schema` must name a known metaschema. Every `pattern` and
   `patternProperties` key must compile for RE2 (controlplane.patterns). Depth and size are capped.
2. The compiler itself cannot reach out: fastjsonschema is given a handler for every URI scheme that
   refuses (without one, it fetches with urllib — no egress guard, redirects followed, no timeout), the
   root `$id` is dropped from the copy it compiles (so nothing resolves against a remote base), and the
   generated code's `REGEX_PATTERNS` and `re` are swapped for RE2 before it ever runs.

jsonschema's `Draft202012Validator.check_schema` (the metaschema check) never retrieves anything: it only
validates the schema as data against the bundled metaschema.

Also refused at save: a `$ref` loop every value recurses through (`{"$ref": "#"}`), found by validating one
value of each JSON type. fastjsonschema's builtin `email` formats (quadratic on Python's `re`) only see text
up to 320 characters.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

import fastjsonschema
from django.conf import settings
from fastjsonschema import JsonSchemaDefinitionException, JsonSchemaValueException
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from controlplane.patterns import PatternError, compile_user_regex

Validator = Callable[[Any], Any]

REF_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")
LOOP_MESSAGE = "schema refers to itself in a loop ($ref cycle that never reaches the value's contents)."
# Metaschemas by URI without scheme and trailing '#'; only these may appear as `$schema`.
KNOWN_METASCHEMAS = frozenset(
    {
        "json-schema.org/draft-04/schema",
        "json-schema.org/draft-06/schema",
        "json-schema.org/draft-07/schema",
        "json-schema.org/draft/2019-09/schema",
        "json-schema.org/draft/2020-12/schema",
    }
)
# fastjsonschema's own format regexes (date-time, email, ...) are library code, not user input: they stay on
# `re` (they use lookaround RE2 lacks); measured linear on adversarial input except the two below.
_BUILTIN_FORMAT_REGEXES = frozenset(
    pattern
    for generator in (
        fastjsonschema.draft04.CodeGeneratorDraft04,
        fastjsonschema.draft06.CodeGeneratorDraft06,
        fastjsonschema.draft07.CodeGeneratorDraft07,
        fastjsonschema.draft2019.CodeGeneratorDraft2019,
    )
    for pattern in generator.FORMAT_REGEXS.values()
)
# Two of them are superlinear on Python's engine (`[^@]+\.[^@]+` after a lookahead: 20,000 characters of
# "a@a.a.a…@" take 1.5 s, a 256 KiB packet minutes). An address has at most 254 characters (RFC 5321), so
# longer text is not matched at all — it is "not an email" at once.
_FORMAT_MAX_CHARS = {"email_re_pattern": 320, "idn-email_re_pattern": 320}


class _CappedFormat:
    """A builtin format regex that answers None (no match) for text over `limit` characters."""

    __slots__ = ("pattern", "_regex", "_limit")

    def __init__(self, regex: Any, limit: int) -> None:
        self.pattern = regex.pattern
        self._regex = regex
        self._limit = limit

    def match(self, text: str) -> Any:
        return self._regex.match(text) if len(text) <= self._limit else None

    def search(self, text: str) -> Any:
        return self._regex.search(text) if len(text) <= self._limit else None


def max_depth() -> int:
    """Deepest nesting of objects and arrays a user schema may have."""
    return int(getattr(settings, "API_JSON_MAX_DEPTH", 64))


def max_nodes() -> int:
    """Most objects and arrays in one user schema (code generation time grows with it)."""
    return int(getattr(settings, "JSON_SCHEMA_MAX_NODES", 5000))


class _RefuseRemote(dict):
    """fastjsonschema's `handlers`: it asks `scheme in handlers` and otherwise falls back to urllib, so this
    mapping claims every scheme (http, https, file, ftp, data, '' ...) and its handler refuses."""

    def __contains__(self, scheme: object) -> bool:
        return True

    def __getitem__(self, scheme: str) -> Callable[[str], Any]:
        return _refuse


def _refuse(uri: str) -> Any:
    raise JsonSchemaDefinitionException(f"remote reference {uri!r} refused: only local '#...' references resolve.")


REFUSE_REMOTE = _RefuseRemote()


class _Re2Module:
    """Stands in for `re` in generated code, whose only use of it is `format: regex` (`re.compile(value)`)."""

    @staticmethod
    def compile(pattern: Any, *args: Any) -> Any:
        return compile_user_regex(pattern, cache=False)  # validated data, not part of the schema


def _nodes(schema: Any) -> Iterator[tuple[Any, int, bool]]:
    """Every object and array in `schema` as `(node, depth, is_root)`, iteratively (no recursion limit).

    Keyword-blind on purpose: a `$ref` can point anywhere in the document (even into `const` or an unknown
    keyword), and whatever it points at is compiled as a schema, so every object counts.
    """
    stack: list[tuple[Any, int]] = [(schema, 1)]
    while stack:
        node, depth = stack.pop()
        yield node, depth, node is schema
        if not isinstance(node, (dict, list)):
            continue
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))


def _metaschema_known(uri: str) -> bool:
    bare = uri.split("://", 1)[1] if uri.startswith(("http://", "https://")) else ""
    return bare.rstrip("#") in KNOWN_METASCHEMAS


def _static_problems(schema: Any) -> list[str]:
    problems: list[str] = []
    count = 0
    for node, depth, is_root in _nodes(schema):
        count += 1
        if depth > max_depth():
            return [f"is nested deeper than {max_depth()} levels."]
        if count > max_nodes():
            return [f"has more than {max_nodes()} objects and arrays."]
        if len(problems) >= 20:  # enough to act on; the rest would only make the response long
            break
        if not isinstance(node, dict):
            continue
        for keyword in REF_KEYWORDS:
            ref = node.get(keyword)
            if isinstance(ref, str) and not ref.startswith("#"):
                problems.append(
                    f"{keyword} {ref[:200]!r} is refused: only local references ('#', '#/$defs/name') are resolved."
                )
        if not is_root and isinstance(node.get("$id"), str):
            problems.append(f"$id {node['$id'][:200]!r} is refused below the root: it would change the base URI.")
        meta = node.get("$schema")
        if isinstance(meta, str) and not _metaschema_known(meta):
            problems.append(f"$schema {meta[:200]!r} is not a known JSON Schema metaschema.")
        pattern = node.get("pattern")
        if isinstance(pattern, str):
            problems += _regex_problems("pattern", pattern)
        pattern_properties = node.get("patternProperties")
        if isinstance(pattern_properties, dict):
            for key in pattern_properties:
                problems += _regex_problems("patternProperties key", key)
    return problems


def _regex_problems(where: str, pattern: str) -> list[str]:
    try:
        compile_user_regex(pattern)
    except PatternError as exc:
        return [f"{where} {pattern[:200]!r} is refused: {exc}"]
    return []


def _compilable_copy(schema: Any) -> Any:
    """The schema as handed to fastjsonschema: same meaning, nothing that makes it resolve or backtrack.

    - The root `$id` / `id` go: with no base URI, a fragment reference can only mean this document.
    - Next to `required` and `patternProperties`, `additionalProperties: false` becomes the equivalent
      `{"not": {}}` and `additionalProperties: {}` the equivalent `true`: for a falsy value fastjsonschema
      runs Python `re.search(pattern, name)` for every required name while generating code (a user pattern
      on Python's backtracking engine).
    """
    if not isinstance(schema, dict):
        return schema
    schema = copy.deepcopy(schema)
    # Whatever their type: fastjsonschema takes the root id as its base URI unchecked (`"id": true` crashed it).
    schema.pop("$id", None)
    schema.pop("id", None)
    for node, _, _ in _nodes(schema):
        if not (isinstance(node, dict) and node.get("patternProperties") and node.get("required")):
            continue
        additional = node.get("additionalProperties", True)
        if additional is False:
            node["additionalProperties"] = {"not": {}}
        elif additional == {} and isinstance(additional, dict):
            node["additionalProperties"] = True
    return schema


def _onto_re2(validate: Validator) -> None:
    """Swap the generated code's compiled user patterns (Python `re`) for RE2 ones, in place.

    fastjsonschema keeps one `REGEX_PATTERNS` dict, keyed by the pattern as written, in the globals shared by
    every function it generated for the schema; the code only calls `.search(...)` on the values.
    """
    namespace = validate.__globals__
    patterns = namespace.get("REGEX_PATTERNS", {})
    for key, compiled in list(patterns.items()):
        if key.endswith("_re_pattern") and compiled.pattern in _BUILTIN_FORMAT_REGEXES:
            if key in _FORMAT_MAX_CHARS:
                patterns[key] = _CappedFormat(compiled, _FORMAT_MAX_CHARS[key])
            continue
        # The key is the user's pattern; fastjsonschema's value had `$` rewritten to `\Z` for Python, and
        # RE2's `$` already means the end of the text.
        patterns[key] = compile_user_regex(key)
    namespace["re"] = _Re2Module


@lru_cache(maxsize=256)
def _compiled(schema_json: str) -> Validator:
    schema = json.loads(schema_json)
    problems = _static_problems(schema)  # again here, so no caller can compile an unchecked schema
    if problems:
        raise JsonSchemaDefinitionException(" ".join(problems))
    validate = fastjsonschema.compile(_compilable_copy(schema), handlers=REFUSE_REMOTE)
    _onto_re2(validate)
    if any(isinstance(node, dict) and node.get("uniqueItems") is True for node, _, _ in _nodes(schema)):
        return _guard_unique_items(validate)
    return validate


# `uniqueItems` is checked by putting the items in a Python set. Integers hash to themselves modulo
# 2**61 - 1, so k * (2**61 - 1) for k = 1, 2, 3... all collide and the set degrades to quadratic time:
# 8,000 such numbers take a second, a 5 MiB body's worth minutes. Only integers of that size collide
# freely (string hashes are randomized, floats collide in tiny classes), so data for a schema with
# uniqueItems may hold at most this many of them.
_HASH_MODULUS = sys.hash_info.modulus
MAX_COLLIDING_INTEGERS = 2048


def _colliding_integers(data: Any, limit: int) -> int:
    """How many integers of magnitude 2**61 - 1 or more `data` holds, counting up to `limit` + 1."""
    count = 0
    stack = [data]
    while stack:
        value = stack.pop()
        kind = type(value)
        if kind is int:
            if not -_HASH_MODULUS < value < _HASH_MODULUS:
                count += 1
                if count > limit:
                    break
        elif kind is list:
            stack.extend(value)
        elif kind is dict:
            stack.extend(value.values())
    return count


def _guard_unique_items(validate: Validator) -> Validator:
    def guarded(data: Any) -> Any:
        if _colliding_integers(data, MAX_COLLIDING_INTEGERS) > MAX_COLLIDING_INTEGERS:
            raise JsonSchemaValueException(
                f"data holds more than {MAX_COLLIDING_INTEGERS} integers of 19 digits or more, which uniqueItems"
                " cannot check in bounded time",
                value=None,
                name="data",
                rule="uniqueItems",
            )
        return validate(data)

    guarded.__wrapped__ = validate  # type: ignore[attr-defined]
    return guarded


def schema_problems(schema: Any) -> list[str]:
    """Why `schema` is refused (empty when it is fine): not an object, remote references, non-RE2 patterns,
    metaschema violations, or what fastjsonschema cannot compile."""
    if not isinstance(schema, (dict, bool)):
        return ["schema must be a JSON Schema object."]
    problems = _static_problems(schema)
    if problems:
        return problems
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return [f"schema is not valid: {exc.message[:300]}"]
    try:
        validate = compile_schema(schema)
    except (JsonSchemaDefinitionException, PatternError) as exc:
        return [f"schema is not valid: {str(exc)[:300]}"]
    except (re.error, ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError) as exc:
        # fastjsonschema assumes well-formed input in places (a Python-only regex, odd keyword values).
        return [f"schema cannot be compiled: {type(exc).__name__}: {str(exc)[:200]}"]
    # `{"$ref": "#"}` or a cycle of $defs compiles, then recurses without end on every value: try one value
    # of each JSON type (a cycle only some values reach is caught when checking them, configstore.rules).
    for sample in (None, True, 0, 0.5, "", [], {}):
        try:
            validate(sample)
        except JsonSchemaValueException:
            pass
        except RecursionError:
            return [LOOP_MESSAGE]
    return []


def compile_schema(schema: Any) -> Validator:
    """A validator for a schema that passed `schema_problems`; raises JsonSchemaValueException on bad data.

    Compiled once per distinct schema (by its canonical JSON text).
    """
    return _compiled(json.dumps(schema, sort_keys=True))
