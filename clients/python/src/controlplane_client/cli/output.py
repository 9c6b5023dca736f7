"""Output for people (aligned tables, plain values) and for scripts (`--json`), and the exit codes."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import click

#: Exit codes (documented in docs/client.md): click itself exits 2 on usage errors.
OK, ERROR, USAGE, NOT_FOUND, PRECONDITION_FAILED = 0, 1, 2, 3, 4


def dumps(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ",".join(cell(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def table(rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> str:
    """Left-aligned columns with a header; values flattened to one line each."""
    lines = [[c.upper() for c in columns]] + [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in lines)


def emit(value: Any, *, as_json: bool, columns: Sequence[str] | None = None) -> None:
    """Print `value`: JSON for scripts; for people a table (lists of objects) or `key: value` lines."""
    if as_json:
        click.echo(dumps(value))
    elif isinstance(value, list) and columns:
        click.echo(table(value, columns))
    elif isinstance(value, dict):
        width = max((len(str(k)) for k in value), default=0)
        for key, item in value.items():
            click.echo(f"{str(key).ljust(width)}  {cell(item)}")
    elif isinstance(value, str):
        click.echo(value, nl=not value.endswith("\n"))
    else:
        click.echo(cell(value))
