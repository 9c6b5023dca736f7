"""`cpctl config ...`: read, write (compare-and-swap), delete, export/import, history, rollback, watch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from controlplane_client.cli import output
from controlplane_client.cli.common import client, json_option, parse_value, plain, read_arg
from controlplane_client.cli.follow import duration
from controlplane_client.config import flatten
from controlplane_client.errors import NotFound

HISTORY_COLUMNS = ["number", "actor", "origin", "message", "created_at"]


@click.group()
def config() -> None:
    """Config namespaces: read, write (compare-and-swap), import/export, history, rollback, watch."""


@config.command("get")
@click.argument("namespace")
@click.argument("key", required=False)
@json_option
@click.pass_context
def config_get(ctx: click.Context, namespace: str, key: str | None, as_json: bool) -> None:
    """The effective config of NAMESPACE, or one KEY's value."""
    cfg = client(ctx).config(namespace)
    if cfg.stale:
        click.echo(f"cpctl: control plane unreachable; cached config, {cfg.age:.0f} s old", err=True)
    if key is None:
        output.emit(cfg.to_dict() if as_json else cfg.flat(), as_json=as_json)
        return
    if key not in cfg:
        raise NotFound(f"{namespace} has no key {key}", status=404, title="Not Found")
    value = plain(cfg[key])
    if isinstance(value, dict) and not as_json:
        value = _flat(value, key)  # a section: one dotted key per line
    output.emit(value, as_json=as_json)


def _flat(value: dict[str, Any], prefix: str) -> dict[str, Any]:
    return flatten(value, prefix + ".")


@config.command("put")
@click.argument("namespace")
@click.argument("key")
@click.argument("value")
@click.option("--expected-revision", type=int, help="Compare-and-swap: the entry's revision (0 = must not exist).")
@click.option("--secret", is_flag=True, default=None, help="Store as a secret (needs config:secrets).")
@click.option("--string", "as_string", is_flag=True, help="Take VALUE as a string even if it parses as JSON.")
@json_option
@click.pass_context
def config_put(
    ctx: click.Context,
    namespace: str,
    key: str,
    value: str,
    expected_revision: int | None,
    secret: bool | None,
    as_string: bool,
    as_json: bool,
) -> None:
    """Set KEY to VALUE (JSON when it parses: 5432, true, "text"; `@file`, `-` for stdin)."""
    result = client(ctx).config_put(
        namespace,
        key,
        parse_value(read_arg(value, "VALUE"), as_string=as_string),
        expected_revision=expected_revision,
        secret=secret,
    )
    output.emit(
        result if as_json else {k: result.get(k) for k in ("key", "value", "revision", "namespace_revision")},
        as_json=as_json,
    )


@config.command("rm")
@click.argument("namespace")
@click.argument("key")
@click.option("--expected-revision", type=int)
@click.pass_context
def config_rm(ctx: click.Context, namespace: str, key: str, expected_revision: int | None) -> None:
    """Delete KEY (compare-and-swap with --expected-revision)."""
    client(ctx).config_delete(namespace, key, expected_revision=expected_revision)


@config.command("export")
@click.argument("namespace")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json", "toml", "ini", "env"]), default="yaml")
@click.option("--prefix", help="Variable prefix for --format env.")
@click.pass_context
def config_export(ctx: click.Context, namespace: str, fmt: str, prefix: str | None) -> None:
    """Print the effective config as a document."""
    output.emit(client(ctx).config_export(namespace, fmt, prefix=prefix), as_json=False)


@config.command("import")
@click.argument("namespace")
@click.argument("document")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json", "toml", "ini", "env"]))
@click.option("--replace", is_flag=True, help="Delete keys the document does not hold.")
@click.option("--allow-empty", is_flag=True)
@json_option
@click.pass_context
def config_import(
    ctx: click.Context, namespace: str, document: str, fmt: str | None, replace: bool, allow_empty: bool, as_json: bool
) -> None:
    """Import DOCUMENT (a file path, or - for stdin), all or nothing."""
    text = read_arg(document if document == "-" else "@" + document.removeprefix("@"), "DOCUMENT")
    if fmt is None:
        suffix = Path(document).suffix.lstrip(".").lower()
        fmt = {"yml": "yaml"}.get(suffix, suffix) if suffix in ("yaml", "yml", "json", "toml", "ini", "env") else "yaml"
    output.emit(
        client(ctx).config_import(namespace, text, fmt, replace=replace, allow_empty=allow_empty), as_json=as_json
    )


@config.command("history")
@click.argument("namespace")
@click.option("--limit", type=int, default=20, show_default=True)
@json_option
@click.pass_context
def config_history(ctx: click.Context, namespace: str, limit: int, as_json: bool) -> None:
    """Revisions, newest first."""
    output.emit(client(ctx).config_history(namespace, limit=limit), as_json=as_json, columns=HISTORY_COLUMNS)


@config.command("rollback")
@click.argument("namespace")
@click.argument("revision", type=int)
@json_option
@click.pass_context
def config_rollback(ctx: click.Context, namespace: str, revision: int, as_json: bool) -> None:
    """Bring NAMESPACE back to REVISION (as a new revision)."""
    output.emit(client(ctx).config_rollback(namespace, revision), as_json=as_json)


@config.command("watch")
@click.argument("namespace")
@click.argument("key", required=False)
@click.option("--wait", "wait", default="30s", show_default=True, help="Long-poll wait per request.")
@json_option
@click.pass_context
def config_watch(ctx: click.Context, namespace: str, key: str | None, wait: str, as_json: bool) -> None:
    """Print the config (or KEY) now and after every change, until interrupted."""
    cfg = client(ctx).config(namespace)
    last: Any = object()
    for current in _chain(cfg, cfg.watch(wait=duration(wait))):
        value: Any = current.to_dict() if key is None else (current[key] if key in current else None)
        if key is not None and value == last:
            continue  # another key changed
        last = value
        if as_json:
            click.echo(json.dumps({"revision": current.revision, "value": plain(value)}, separators=(",", ":")))
        else:
            click.echo(f"revision {current.revision}: {output.cell(plain(value))}")


def _chain(first: Any, rest: Any) -> Any:
    yield first
    yield from rest
