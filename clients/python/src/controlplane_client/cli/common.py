"""Helpers shared by cpctl's command modules: the client from the root context, --json, argument parsing."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from controlplane_client.client import Client

json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")


def client(ctx: click.Context) -> Client:
    obj = ctx.find_root().obj
    if "client" not in obj:
        obj["client"] = Client(obj["url"], obj["api_key"], watch_url=obj["watch_url"], timeout=obj["timeout"])
    return obj["client"]


def parse_value(text: str, *, as_string: bool) -> Any:
    """A JSON value when it parses (`5432`, `true`, `{"a": 1}`), else the text itself."""
    if as_string:
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def read_arg(text: str, param: str = "VALUE") -> str:
    """`@file` reads a file, `-` (or `@-`) stdin, anything else is the text itself.

    A file that cannot be read is a usage error naming `param` (exit 2), not a traceback.
    """
    if text in ("-", "@-"):
        return sys.stdin.read()
    if text.startswith("@"):
        try:
            return Path(text[1:]).read_text()
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
            raise click.BadParameter(f"cannot read {text[1:]}: {reason}", param_hint=param) from error
    return text


def json_arg(text: str, param: str) -> Any:
    """The JSON given to `param`; text that is not JSON is a usage error naming it (exit 2)."""
    try:
        return json.loads(text)
    except ValueError as error:
        raise click.BadParameter(f"not JSON ({error})", param_hint=param) from error


def plain(value: Any) -> Any:
    """Frozen config values (mapping proxies, tuples) as plain JSON types."""
    return json.loads(json.dumps(value, default=dict))
