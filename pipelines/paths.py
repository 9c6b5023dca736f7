"""Dotted paths into a packet (`payload.amount`, `metadata.region`, `tags`), compiled once into tuples.

Pure helpers over plain dicts and lists; a numeric segment indexes a list.
"""

from __future__ import annotations

from typing import Any

ROOTS = ("id", "payload", "metadata", "tags")
WRITABLE_ROOTS = ("payload", "metadata", "tags")


class Missing:
    """The marker for a path that does not exist (distinct from a JSON null)."""

    _instance: Missing | None = None

    def __new__(cls) -> Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = Missing()


class PathError(Exception):
    """A path could not be read or written on this packet (for example, a segment is not an object)."""


def parse_path(path: Any, *, writable: bool = True) -> tuple[str, ...]:
    """Split and check a dotted path; raises ValueError with a readable message."""
    if not isinstance(path, str) or not path.strip():
        raise ValueError("A path is a non-empty dotted string such as payload.amount.")
    parts = tuple(path.strip().split("."))
    if any(not part for part in parts):
        raise ValueError(f"Path {path!r} has an empty segment.")
    roots = WRITABLE_ROOTS if writable else ROOTS
    if parts[0] not in roots:
        raise ValueError(f"Path {path!r} must start with one of: {', '.join(roots)}.")
    if writable and parts[0] == "tags" and len(parts) > 1:
        raise ValueError("Tags are a list of strings: use add_tag/remove_tag, or the whole path `tags`.")
    return parts


def get_path(packet: Any, parts: tuple[str, ...]) -> Any:
    """The value at `parts`, or MISSING."""
    node = packet
    for part in parts:
        if isinstance(node, dict):
            node = node.get(part, MISSING)
            if node is MISSING:
                return MISSING
        elif isinstance(node, list) and _is_index(part):
            index = int(part)
            if index >= len(node):
                return MISSING
            node = node[index]
        else:
            return MISSING
    return node


def set_path(packet: dict, parts: tuple[str, ...], value: Any) -> None:
    """Set the value at `parts`, creating intermediate objects; raises PathError on a non-container."""
    node: Any = packet
    for depth, part in enumerate(parts[:-1]):
        if isinstance(node, dict):
            child = node.get(part)
            if not isinstance(child, (dict, list)):
                if child is not None:
                    raise PathError(f"{'.'.join(parts[: depth + 1])} is not an object.")
                child = node[part] = {}
            node = child
        elif isinstance(node, list) and _is_index(part) and int(part) < len(node):
            node = node[int(part)]
        else:
            raise PathError(f"{'.'.join(parts[: depth + 1])} is not an object.")
    last = parts[-1]
    if isinstance(node, dict):
        node[last] = value
    elif isinstance(node, list) and _is_index(last) and int(last) < len(node):
        node[int(last)] = value
    else:
        raise PathError(f"{'.'.join(parts[:-1])} is not an object.")


def delete_path(packet: dict, parts: tuple[str, ...]) -> Any:
    """Remove the value at `parts` and return it (MISSING when absent)."""
    parent = get_path(packet, parts[:-1]) if len(parts) > 1 else packet
    last = parts[-1]
    if isinstance(parent, dict):
        return parent.pop(last, MISSING)
    if isinstance(parent, list) and _is_index(last) and int(last) < len(parent):
        return parent.pop(int(last))
    return MISSING


def _is_index(part: str) -> bool:
    return part.isdigit()


def copy_json(value: Any) -> Any:
    """A deep copy of JSON data (dicts, lists, scalars), several times faster than `copy.deepcopy`."""
    if isinstance(value, dict):
        return {k: copy_json(v) if isinstance(v, (dict, list)) else v for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) if isinstance(v, (dict, list)) else v for v in value]
    return value


def compile_getter(parts: tuple[str, ...]):  # type: ignore[no-untyped-def]
    """A fast `get_path(packet, parts)` for one path: plain dict lookups, the generic walk otherwise."""
    if len(parts) == 1:
        key = parts[0]
        return lambda packet: packet.get(key, MISSING)
    if len(parts) == 2:
        first, second = parts

        def get2(packet: dict) -> Any:
            node = packet.get(first)
            if type(node) is dict:
                return node.get(second, MISSING)
            return get_path(packet, parts)

        return get2
    return lambda packet: get_path(packet, parts)


def compile_setter(parts: tuple[str, ...]):  # type: ignore[no-untyped-def]
    """A fast `set_path(packet, parts, value)` for one path, same rules as `set_path`."""
    if len(parts) == 1:
        key = parts[0]

        def set1(packet: dict, value: Any) -> None:
            packet[key] = value

        return set1
    if len(parts) == 2:
        first, second = parts

        def set2(packet: dict, value: Any) -> None:
            node = packet.get(first)
            if type(node) is dict:
                node[second] = value
            else:
                set_path(packet, parts, value)

        return set2
    return lambda packet, value: set_path(packet, parts, value)


def compile_deleter(parts: tuple[str, ...]):  # type: ignore[no-untyped-def]
    """A fast `delete_path(packet, parts)` for one path."""
    if len(parts) == 2:
        first, second = parts

        def delete2(packet: dict) -> Any:
            node = packet.get(first)
            if type(node) is dict:
                return node.pop(second, MISSING)
            return delete_path(packet, parts)

        return delete2
    return lambda packet: delete_path(packet, parts)
