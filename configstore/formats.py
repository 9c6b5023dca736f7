"""Parsing and rendering of config documents: YAML, JSON, INI, TOML and env lines.

Documents are nested mappings; the store keeps flat dotted keys. `flatten` turns a document into keys
(a mapping is a section unless the key it sits at is known to hold an object value), `nest` does the
reverse. INI and env carry only strings, so scalars there are written as JSON when a plain string would
read back as something else, which keeps export -> import an exact round trip.
"""

from __future__ import annotations

import configparser
import json
import re
import shlex
import tomllib
from collections.abc import Callable, Container
from typing import Any

import tomli_w
import yaml
from django.conf import settings
from yaml.composer import Composer, ComposerError
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent, CollectionStartEvent
from yaml.nodes import MappingNode, Node, SequenceNode
from yaml.resolver import Resolver

from controlplane.jsonbounds import (
    NulCharacterError,
    json_depth_exceeds,
    loads_bounded,
    nonfinite_path,
    nul_path,
    printable_key,
)

FORMATS = ("yaml", "json", "ini", "toml", "env")
CONTENT_TYPES = {
    "yaml": "application/yaml",
    "json": "application/json",
    "ini": "text/plain; charset=utf-8",
    "toml": "application/toml",
    "env": "text/plain; charset=utf-8",
}
_INI_ROOT = "__root__"
_YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
# Nodes that aliases may add to a YAML document, counted as expanded (an alias of a 1,000-node
# mapping adds 1,000). A "billion laughs" document is a few hundred bytes of aliases of aliases: the
# nodes are shared while parsing, but everything that walks the result (flatten, JSON rendering,
# jsonb) pays for every expanded copy, which took seconds and hundreds of MB per request.
YAML_ALIAS_NODE_BUDGET = 10_000
_ENV_LINE = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


class FormatError(ValueError):
    """A document that cannot be parsed or rendered in the requested format."""


def _scalar_text(value: Any) -> str:
    """A value as INI/env text: plain for strings that read back unchanged, JSON otherwise."""
    if isinstance(value, str):
        if value and value == value.strip() and "\n" not in value and "\r" not in value:
            try:
                json.loads(value)
            except ValueError:
                return value
        return json.dumps(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def scalar_from_text(text: str) -> Any:
    """The inverse of `_scalar_text`: JSON when it parses, else the string itself."""
    try:
        return loads_bounded(text) if text else ""
    except ValueError:  # NulCharacterError too: the text itself holds no NUL, so it can be kept as is
        return text


def _document_scalar(key: str, text: str) -> Any:
    """`scalar_from_text` for imported INI/env documents, which refuse a JSON value that decodes to NUL."""
    try:
        return loads_bounded(text) if text else ""
    except NulCharacterError:
        raise FormatError(
            f"NUL characters are not allowed (as \\u0000 in the value of {printable_key(key)})."
        ) from None
    except ValueError:
        return text


def max_depth() -> int:
    """How deeply any config document (YAML, JSON, TOML) may nest: the API's JSON depth limit."""
    return settings.API_JSON_MAX_DEPTH


class _BoundedComposer(Composer):
    """PyYAML's composer with a nesting limit, no recursive aliases and a budget for alias expansion.

    The C composer cannot be bounded, so composition runs in Python on the C parser's events (libyaml
    still does the scanning and parsing, the expensive part).
    """

    def __init__(self) -> None:
        super().__init__()
        self._depth = 0
        self._open_anchors: set[str] = set()
        self._alias_nodes = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            if event.anchor in self._open_anchors:
                raise ComposerError(
                    None, None, f"alias *{event.anchor} refers to a node that contains it", event.start_mark
                )
            node = super().compose_node(parent, index)
            self._count_alias(node, event)
            return node
        if not isinstance(event, CollectionStartEvent):
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > max_depth():
            raise ComposerError(None, None, f"the document nests deeper than {max_depth()} levels", event.start_mark)
        anchor = event.anchor
        if anchor is not None:
            self._open_anchors.add(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1
            if anchor is not None:
                self._open_anchors.discard(anchor)

    def _count_alias(self, node: Node, event: AliasEvent) -> None:
        """Add the expanded size of an aliased node; stop walking as soon as the budget is spent."""
        stack = [node]
        while stack:
            current = stack.pop()
            self._alias_nodes += 1
            if self._alias_nodes > YAML_ALIAS_NODE_BUDGET:
                raise ComposerError(
                    None,
                    None,
                    f"aliases expand to more than {YAML_ALIAS_NODE_BUDGET} nodes (write the values out instead)",
                    event.start_mark,
                )
            if isinstance(current, SequenceNode):
                stack.extend(current.value)
            elif isinstance(current, MappingNode):
                for key, value in current.value:
                    stack.append(key)
                    stack.append(value)


try:  # libyaml's C parser when PyYAML was built with it (about 10x faster on large imports)
    from yaml.cyaml import CParser as _YAML_PARSER
except ImportError:  # pragma: no cover - PyYAML without libyaml
    _YAML_PARSER = type("_PyParser", (yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser), {})  # type: ignore[assignment,misc]


class BoundedYAMLLoader(_BoundedComposer, _YAML_PARSER, SafeConstructor, Resolver):  # type: ignore[misc, valid-type]
    """The safe YAML subset (libyaml's parser when available) with `_BoundedComposer`'s limits."""

    def __init__(self, stream: str) -> None:
        if _YAML_PARSER.__name__ == "_PyParser":
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)
        else:
            _YAML_PARSER.__init__(self, stream)
        _BoundedComposer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)


def yaml_load(text: str) -> Any:
    """The one YAML loader of the project: safe types, bounded depth and aliases; `FormatError` otherwise."""
    try:
        return yaml.load(text, Loader=BoundedYAMLLoader)  # noqa: S506 - a SafeConstructor-based loader
    except yaml.YAMLError as exc:
        raise FormatError(f"Invalid YAML: {exc}") from None
    except (ValueError, OverflowError) as exc:
        # Raised while constructing values the parser accepted: `2001-13-45`, `!!int x`, an integer of
        # more than 4,300 digits. The document's fault, not ours.
        raise FormatError(f"Invalid YAML value: {exc}") from None
    except RecursionError:  # a deep structure in merge keys or construction: the input's fault
        raise FormatError(f"Invalid YAML: the document nests deeper than {max_depth()} levels.") from None


def _parse_yaml(text: str) -> Any:
    return yaml_load(text)


def _parse_json(text: str) -> Any:
    try:
        return loads_bounded(text)
    except ValueError as exc:
        raise FormatError(f"Invalid JSON: {exc}") from None


# Strings and comments (whose brackets do not nest) and the brackets that do, for the TOML pre-scan.
_TOML_TOKENS = re.compile(
    r'"""(?:[^\\]|\\.)*?"""|\'\'\'.*?\'\'\'|"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'|#[^\n]*|[\[\]{}]',
    re.DOTALL,
)


def _toml_depth_exceeds(text: str, limit: int) -> bool:
    """True when arrays/inline tables in `text` nest deeper than `limit` (tomllib itself would recurse out)."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for match in _TOML_TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > limit:
                return True
        elif token in "]}":
            depth = max(depth - 1, 0)
    return False


def _parse_toml(text: str) -> Any:
    if _toml_depth_exceeds(text, max_depth()):
        raise FormatError(f"Invalid TOML: the document nests deeper than {max_depth()} levels.")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FormatError(f"Invalid TOML: {exc}") from None
    except ValueError as exc:  # an integer of more than 4,300 digits
        raise FormatError(f"Invalid TOML value: {exc}") from None
    except RecursionError:
        raise FormatError(f"Invalid TOML: the document nests deeper than {max_depth()} levels.") from None


def _parse_ini(text: str) -> Any:
    parser = configparser.ConfigParser(interpolation=None, default_section="\x00none", strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    try:
        parser.read_string(f"[{_INI_ROOT}]\n{text}")
    except configparser.Error as exc:
        raise FormatError(f"Invalid INI: {exc}".replace(f"[{_INI_ROOT}]", "")) from None
    document: dict[str, Any] = {}
    for section in parser.sections():
        items = {key: _document_scalar(key, value) for key, value in parser.items(section)}
        if section == _INI_ROOT:
            document.update(items)
        else:
            document[section] = (
                {**document.get(section, {}), **items} if isinstance(document.get(section), dict) else items
            )
    return document


def parse_env_lines(text: str) -> dict[str, Any]:
    """`KEY=value` lines (optionally `export`, shell-quoted) -> `{"key": value}` with `__` -> `.`."""
    document: dict[str, Any] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _ENV_LINE.match(line)
        if match is None:
            raise FormatError(f"Invalid env line {number}: expected NAME=value.")
        name, value = match.groups()
        try:
            parts = shlex.split(value, posix=True) if value else [""]
        except ValueError as exc:
            raise FormatError(f"Invalid env line {number}: {exc}.") from None
        document[env_name_to_key(name)] = _document_scalar(name, " ".join(parts))
    return document


def env_name_to_key(name: str) -> str:
    """`DB__POOL_SIZE` -> `db.pool_size` (the prefix already removed)."""
    return name.replace("__", ".").lower()


PARSERS: dict[str, Callable[[str], Any]] = {
    "yaml": _parse_yaml,
    "json": _parse_json,
    "ini": _parse_ini,
    "toml": _parse_toml,
    "env": parse_env_lines,
}


def parse_document(text: str, fmt: str) -> dict[str, Any]:
    """Parse `text` as `fmt` into a mapping (an empty document is an empty mapping)."""
    parser = PARSERS.get(fmt)
    if parser is None:
        raise FormatError(f"Unknown format {fmt!r}; use one of {', '.join(FORMATS)}.")
    document = parser(text)
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise FormatError(f"The document must be a mapping at the top level, not {type(document).__name__}.")
    if json_depth_exceeds(document, max_depth()):
        raise FormatError(f"The document nests deeper than {max_depth()} levels.")
    path = nul_path(document)
    if path is not None:
        raise FormatError(f"NUL characters are not allowed (at {path}).")
    path = nonfinite_path(document)
    if path is not None:
        raise FormatError(f"NaN, infinite and over-long numbers cannot be stored (at {path}).")
    return document


def flatten(document: dict[str, Any], *, object_keys: Container[str] = (), limit: int = 50_000) -> dict[str, Any]:
    """Nested mapping -> `{dotted.key: value}`; a mapping at a key in `object_keys` stays one value."""
    flat: dict[str, Any] = {}
    stack: list[tuple[str, Any]] = [(str(k), v) for k, v in reversed(list(document.items()))]
    while stack:
        key, value = stack.pop()
        if isinstance(value, dict) and value and key not in object_keys:
            stack.extend((f"{key}.{k}", v) for k, v in reversed(list(value.items())))
            continue
        flat[key] = _plain(value, key)
        if len(flat) > limit:
            raise FormatError(f"The document has more than {limit} keys.")
    return flat


def _plain(value: Any, key: str) -> Any:
    """YAML/TOML values that JSON cannot hold (dates, times) become ISO strings.

    Anything else (YAML's `!!binary` bytes and `!!set`) is a `FormatError` naming `key`: written out with
    `str()` it became a Python repr (`"b'\\x00'"`, a set in hash order), and bytes slipped past the NUL check.
    """
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v, key) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, key) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    kind = "binary data (!!binary)" if isinstance(value, (bytes, bytearray)) else type(value).__name__
    raise FormatError(f"{key}: {kind} has no JSON form and cannot be stored; use a string.")


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """`{dotted.key: value}` -> nested mapping (keys sorted). A key that is also a section keeps its value."""
    root: dict[str, Any] = {}
    for key in sorted(flat):
        node = root
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[leaf] = flat[key]
    return root


def _render_ini(flat: dict[str, Any]) -> str:
    top = [f"{k} = {_scalar_text(v)}" for k, v in sorted(flat.items()) if "." not in k]
    sections: dict[str, list[str]] = {}
    for key in sorted(k for k in flat if "." in k):
        section, _, name = key.rpartition(".")
        sections.setdefault(section, []).append(f"{name} = {_scalar_text(flat[key])}")
    blocks = ["\n".join(top)] if top else []
    blocks += [f"[{section}]\n" + "\n".join(lines) for section, lines in sections.items()]
    return "\n\n".join(blocks) + "\n"


def _render_env(flat: dict[str, Any], prefix: str = "") -> str:
    lines = [
        f"{prefix}{key.replace('.', '__').upper()}={shlex.quote(_scalar_text(value))}"
        for key, value in sorted(flat.items())
    ]
    return "\n".join(lines) + ("\n" if lines else "")


def _holds_null(value: Any) -> bool:
    """Whether a JSON value is null or holds a null at any depth."""
    if isinstance(value, dict):
        return any(_holds_null(item) for item in value.values())
    if isinstance(value, list):
        return any(_holds_null(item) for item in value)
    return value is None


def _render_toml(flat: dict[str, Any]) -> str:
    # Also inside a key's object or list value ({"a": null}, [1, null]), where tomli_w would fail with a TypeError.
    nulls = sorted(key for key, value in flat.items() if _holds_null(value))
    if nulls:
        raise FormatError(f"TOML cannot hold null values ({', '.join(nulls[:5])}); export as yaml or json.")
    try:
        return tomli_w.dumps(nest(flat))
    except (TypeError, ValueError) as exc:
        raise FormatError(f"Cannot render TOML: {exc}") from None


def render_document(flat: dict[str, Any], fmt: str, *, env_prefix: str = "") -> str:
    """Render a flat effective config in `fmt` (INI and env keep flat keys, the others nest them)."""
    if fmt == "yaml":
        return yaml.dump(nest(flat), Dumper=_YAML_DUMPER, sort_keys=True, allow_unicode=True, default_flow_style=False)
    if fmt == "json":
        return json.dumps(nest(flat), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if fmt == "ini":
        return _render_ini(flat)
    if fmt == "toml":
        return _render_toml(flat)
    if fmt == "env":
        return _render_env(flat, env_prefix)
    raise FormatError(f"Unknown format {fmt!r}; use one of {', '.join(FORMATS)}.")
