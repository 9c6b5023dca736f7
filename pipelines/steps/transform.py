"""`transform`: ordered operations on dotted paths (set, remove, rename, copy, default, cast, string ops,
json_parse/json_dump, map, tags and metadata), in the spirit of Kong's request-transformer.

Operations on a missing path are no-ops (there is nothing to change); a wrong type fails the step.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from pipelines.budget import PACKET_BYTES, BudgetExceeded
from pipelines.paths import (
    MISSING,
    PathError,
    compile_deleter,
    compile_getter,
    compile_setter,
    copy_json,
    get_path,
    parse_path,
)
from pipelines.steps.base import (
    Apply,
    RunState,
    StepError,
    StepKind,
    check_expression,
    check_path,
    compile_expression,
    search,
)

Op = Callable[[dict, RunState], None]

# op name -> (required fields, whether it takes `value` or `expr`)
OPS: dict[str, tuple[tuple[str, ...], bool]] = {
    "set": (("path",), True),
    "default": (("path",), True),
    "remove": (("path",), False),
    "rename": (("path", "to"), False),
    "copy": (("path", "to"), False),
    "cast": (("path", "type"), False),
    "upper": (("path",), False),
    "lower": (("path",), False),
    "strip": (("path",), False),
    "replace": (("path", "old", "new"), False),
    "truncate": (("path", "length"), False),
    "format": (("path", "template"), False),
    "json_parse": (("path",), False),
    "json_dump": (("path",), False),
    "map": (("expr",), False),
    "add_tag": (("value",), False),
    "remove_tag": (("value",), False),
    "set_metadata": (("key",), True),
}
CAST_TYPES = ("int", "float", "str", "bool")
_TEMPLATE = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
_TRUE = {"true", "1", "yes", "on", "y", "t"}
_FALSE = {"false", "0", "no", "off", "n", "f", ""}


class TransformStep(StepKind):
    """Apply `operations` in order to the packet."""

    kind = "transform"
    description = "Change the packet: set, remove, rename, copy, default, cast, string ops, json, map, tags."
    schema = {
        "type": "object",
        "required": ["operations"],
        "additionalProperties": False,
        "properties": {
            "operations": {
                "type": "array",
                "minItems": 1,
                "maxItems": 200,
                "items": {
                    "type": "object",
                    "required": ["op"],
                    "properties": {
                        "op": {"enum": list(OPS)},
                        "path": {"type": "string"},
                        "to": {"type": "string"},
                        "expr": {"type": "string"},
                        "value": {},
                        "key": {"type": "string", "minLength": 1},
                        "type": {"enum": list(CAST_TYPES)},
                        "old": {"type": "string", "minLength": 1},
                        "new": {"type": "string"},
                        "length": {"type": "integer", "minimum": 0},
                        "template": {"type": "string"},
                    },
                    "additionalProperties": False,
                },
            }
        },
    }

    @classmethod
    def check(cls, config: dict) -> list[str]:
        errors: list[str] = []
        for index, operation in enumerate(config["operations"]):
            where = f"operations.{index}"
            name = operation["op"]
            required, takes_value = OPS[name]
            for needed in required:
                if needed not in operation:
                    errors.append(f"{where}: {name} needs `{needed}`.")
            if takes_value and ("value" in operation) == ("expr" in operation):
                errors.append(f"{where}: {name} needs exactly one of `value` (a literal) or `expr` (JMESPath).")
            if "path" in operation:
                check_path(errors, f"{where}.path", operation["path"])
            if "to" in operation:
                check_path(errors, f"{where}.to", operation["to"])
            if "expr" in operation:
                check_expression(errors, f"{where}.expr", operation["expr"])
            if name in ("add_tag", "remove_tag") and not (
                isinstance(operation.get("value"), str) and operation["value"]
            ):
                errors.append(f"{where}: {name} needs `value`, a non-empty string.")
            if name == "format" and "template" in operation:
                for match in _TEMPLATE.finditer(operation["template"]):
                    if match.group(1) is not None:
                        check_path(errors, f"{where}.template", match.group(1), writable=False)
        return errors

    @classmethod
    def compile(cls, config: dict) -> Apply:
        ops = [_compile_op(operation) for operation in config["operations"]]

        def apply(packet: dict, state: RunState) -> None:
            index = 0
            # BudgetExceeded passes through unchanged: the executor names the budget.
            try:
                for op in ops:
                    op(packet, state)
                    index += 1
            except (StepError, PathError) as exc:
                raise StepError(f"operation {index} ({config['operations'][index]['op']}): {exc}") from None

        return apply


def _value_source(operation: dict) -> Callable[[dict], Any]:
    if "expr" in operation:
        compiled = compile_expression(operation["expr"])

        def evaluate(packet: dict) -> Any:
            value = search(compiled, packet)
            return copy_json(value) if isinstance(value, (dict, list)) else value

        return evaluate
    literal = operation.get("value")
    if isinstance(literal, (dict, list)):
        return lambda packet: copy_json(literal)
    return lambda packet: literal


def _string_op(parts: tuple[str, ...], name: str, fn: Callable[[str], str]) -> Op:
    get, put = compile_getter(parts), compile_setter(parts)

    def op(packet: dict, state: RunState) -> None:
        value = get(packet)
        if value is MISSING or value is None:
            return
        if not isinstance(value, str):
            raise StepError(f"{'.'.join(parts)} is {type(value).__name__}, not a string ({name}).")
        result = fn(value)
        put(packet, result)
        state.wrote(packet, result)

    if len(parts) != 2:
        return op
    first, second = parts

    def op2(packet: dict, state: RunState) -> None:
        # The usual `payload.field` on a string, without the general path walk.
        node = packet.get(first)
        if type(node) is dict:
            value = node.get(second)
            if type(value) is str:
                result = node[second] = fn(value)
                if type(result) is not str or len(result) > len(value):  # only growth counts (replace, upper)
                    state.wrote(packet, result)
                return
        op(packet, state)

    return op2


def _cast(value: Any, to: str) -> Any:
    try:
        if to == "str":
            return (
                value
                if isinstance(value, str)
                else json.dumps(value)
                if isinstance(value, (dict, list))
                else (
                    ("true" if value else "false")
                    if isinstance(value, bool)
                    else "null"
                    if value is None
                    else str(value)
                )
            )
        if isinstance(value, (dict, list)) or value is None:
            raise ValueError(f"cannot cast {type(value).__name__ if value is not None else 'null'}")
        if to == "int":
            if type(value) is int:
                return value
            if isinstance(value, str):
                text = value.strip()
                return int(text) if text.lstrip("+-").isdigit() else int(float(text))
            return int(value)
        if to == "float":
            result = float(value)
            if result != result or result in (float("inf"), float("-inf")):  # "nan", "1e999": no JSON form
                raise ValueError(f"{value!r} is not a finite number")
            return result
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError(f"{value!r} is not a boolean")
        return bool(value)
    except (ValueError, OverflowError) as exc:
        raise StepError(f"cannot cast to {to}: {exc}") from None


def _format(template: str, packet: dict, limit: int | None = None) -> str:
    """The template with `{path}` placeholders filled; past `limit` characters BudgetExceeded, before the
    text is built (a template repeating a large value would otherwise allocate it many times over)."""
    written = len(template)

    def substitute(match: re.Match) -> str:
        nonlocal written
        whole, path = match.group(0), match.group(1)
        if path is None:
            return whole[0]
        value = get_path(packet, tuple(path.strip().split(".")))
        if value is MISSING or value is None:
            return ""
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        written += len(text)
        if limit is not None and written > limit:
            raise BudgetExceeded(PACKET_BYTES, f"the formatted text grows past the packet_bytes budget ({limit} bytes)")
        return text

    return _TEMPLATE.sub(substitute, template)


def _json_parse(text: str, where: str) -> Any:
    from controlplane.jsonbounds import json_depth_exceeds, loads_bounded
    from pipelines.conf import json_max_depth

    try:
        # The API's own parser: NUL (PostgreSQL refuses it in the run's jsonb) and 1e999/NaN (no JSON form:
        # the response then failed with a 500) are refused like any other invalid JSON.
        value = loads_bounded(text, max_depth=json_max_depth())
    except (ValueError, RecursionError) as exc:
        raise StepError(f"{where} is not valid JSON: {exc}") from None
    if json_depth_exceeds(value, json_max_depth()):
        raise StepError(f"{where} nests deeper than {json_max_depth()} levels.")
    return value


def _compile_op(operation: dict) -> Op:  # noqa: C901 - one branch per operation is the clearest form
    name = operation["op"]
    parts = parse_path(operation["path"]) if "path" in operation else ()
    target = parse_path(operation["to"]) if "to" in operation else ()
    where = operation.get("path", "")

    get, put = (compile_getter(parts), compile_setter(parts)) if parts else (None, None)
    if name == "set":
        source = _value_source(operation)

        def assign(packet: dict, state: RunState) -> None:
            value = source(packet)
            put(packet, value)
            state.wrote(packet, value)

        return assign
    if name == "default":
        source = _value_source(operation)

        def default(packet: dict, state: RunState) -> None:
            current = get(packet)
            if current is MISSING or current is None:
                value = source(packet)
                put(packet, value)
                state.wrote(packet, value)

        return default
    if name == "remove":
        drop = compile_deleter(parts)

        def remove(packet: dict, state: RunState) -> None:
            drop(packet)

        return remove
    if name in ("rename", "copy"):
        move = name == "rename"

        put_target = compile_setter(target)
        take = compile_deleter(parts) if move else get

        def relocate(packet: dict, state: RunState) -> None:
            value = take(packet)
            if value is not MISSING:
                put_target(packet, value if move else copy_json(value))
                if not move:
                    state.wrote(packet, value)

        return relocate
    if name == "cast":
        to = operation["type"]

        def cast(packet: dict, state: RunState) -> None:
            value = get(packet)
            if value is not MISSING:
                cast_value = _cast(value, to)
                put(packet, cast_value)
                state.wrote(packet, cast_value)

        return cast
    if name == "upper":
        return _string_op(parts, name, str.upper)
    if name == "lower":
        return _string_op(parts, name, str.lower)
    if name == "strip":
        return _string_op(parts, name, str.strip)
    if name == "replace":
        old, new = operation["old"], operation["new"]
        if len(new) <= len(old):
            return _string_op(parts, name, lambda s: s.replace(old, new))
        growth = len(new) - len(old)

        def replace(packet: dict, state: RunState) -> None:
            value = get(packet)
            if value is MISSING or value is None:
                return
            if not isinstance(value, str):
                raise StepError(f"{where} is {type(value).__name__}, not a string (replace).")
            # The result's length is known before it is built: refuse one that could not fit.
            if state.limit is not None and len(value) + value.count(old) * growth > state.limit:
                state.exceeded = PACKET_BYTES
                raise BudgetExceeded(
                    PACKET_BYTES, f"the replaced text grows past the packet_bytes budget ({state.limit} bytes)"
                )
            result = value.replace(old, new)
            put(packet, result)
            state.wrote(packet, result)

        return replace
    if name == "truncate":
        length = operation["length"]
        return _string_op(parts, name, lambda s: s[:length])
    if name == "format":
        template = operation["template"]

        def render(packet: dict, state: RunState) -> None:
            text = _format(template, packet, state.limit)
            put(packet, text)
            state.wrote(packet, text)

        return render
    if name == "json_parse":
        return _string_op(parts, name, lambda s: _json_parse(s, where))
    if name == "json_dump":

        def dump(packet: dict, state: RunState) -> None:
            value = get(packet)
            if value is not MISSING:
                text = json.dumps(value, separators=(",", ":"), sort_keys=True)
                put(packet, text)
                state.wrote(packet, text)

        return dump
    if name == "map":
        compiled = compile_expression(operation["expr"])

        def project(packet: dict, state: RunState) -> None:
            packet["payload"] = payload = copy_json(search(compiled, packet))
            state.wrote(packet, payload)

        return project
    if name in ("add_tag", "remove_tag"):
        tag, adding = operation["value"], name == "add_tag"

        def tags(packet: dict, state: RunState) -> None:
            current = packet.get("tags")
            if not isinstance(current, list):
                current = packet["tags"] = []
            if adding and tag not in current:
                current.append(tag)
            elif not adding:
                packet["tags"] = [t for t in current if t != tag]

        return tags
    if name == "set_metadata":
        key, source = operation["key"], _value_source(operation)

        def metadata(packet: dict, state: RunState) -> None:
            meta = packet.get("metadata")
            if type(meta) is not dict:
                meta = packet["metadata"] = {}
            meta[key] = value = source(packet)
            state.wrote(packet, value)

        return metadata
    raise ValueError(f"unknown operation {name}")  # unreachable after validation
