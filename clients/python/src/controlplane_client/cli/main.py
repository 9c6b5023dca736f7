"""`cpctl`: services, discovery, config, pipelines, keys, events, `exec` and `render` from the command line.

Every command takes `--url`/`--api-key` (defaults `CONTROLPLANE_URL`/`CONTROLPLANE_API_KEY`) and prints a
table or plain text for people, JSON with `--json`. Exit codes: 0 ok, 1 error, 2 usage, 3 not found,
4 precondition failed (a compare-and-swap lost).
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import click

from controlplane_client.cli import output
from controlplane_client.cli.common import client, json_arg, json_option, read_arg
from controlplane_client.cli.config_commands import config
from controlplane_client.cli.follow import duration, wait_range
from controlplane_client.errors import ControlPlaneError, NotFound, PreconditionFailed

SERVICE_COLUMNS = ["name", "type", "instance_count", "health", "tags"]
INSTANCE_COLUMNS = ["instance_id", "address", "port", "status", "tags"]
EVENT_COLUMNS = ["id", "created_at", "kind", "actor", "subject"]
KEY_COLUMNS = ["prefix", "name", "scopes", "rate", "namespaces", "revoked", "expires_at"]


class CpctlGroup(click.Group):
    """Turns the SDK's typed errors into a message on stderr and the documented exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NotFound as error:
            click.echo(f"cpctl: {error}", err=True)
            ctx.exit(output.NOT_FOUND)
        except PreconditionFailed as error:
            click.echo(f"cpctl: {error}", err=True)
            ctx.exit(output.PRECONDITION_FAILED)
        except ControlPlaneError as error:
            click.echo(f"cpctl: {error}", err=True)
            ctx.exit(output.ERROR)


@click.group(cls=CpctlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--url",
    envvar="CONTROLPLANE_URL",
    default="http://127.0.0.1:8000",
    show_default=True,
    help="Control plane base URL (CONTROLPLANE_URL).",
)
@click.option("--api-key", envvar="CONTROLPLANE_API_KEY", help="API key (CONTROLPLANE_API_KEY).")
@click.option(
    "--watch-url",
    envvar="CONTROLPLANE_WATCH_URL",
    default=None,
    help="Watch server URL when it has its own address (CONTROLPLANE_WATCH_URL; default --url).",
)
@click.option("--timeout", type=float, default=10.0, show_default=True, help="Seconds per request.")
@click.version_option(package_name="controlplane-client")
@click.pass_context
def cli(ctx: click.Context, url: str, api_key: str | None, watch_url: str | None, timeout: float) -> None:
    """Command line for the controlplane integration control plane."""
    ctx.obj = {"url": url, "api_key": api_key, "watch_url": watch_url, "timeout": timeout}


# services -------------------------------------------------------------------------------------------------
@cli.group()
def services() -> None:
    """Services and their instances."""


@services.command("ls")
@click.option("--tag")
@click.option("--type", "type_")
@click.option("--status")
@json_option
@click.pass_context
def services_ls(ctx: click.Context, tag: str | None, type_: str | None, status: str | None, as_json: bool) -> None:
    """List services."""
    rows = client(ctx).services(tag=tag, type=type_, status=status)
    output.emit(rows, as_json=as_json, columns=SERVICE_COLUMNS)


@services.command("get")
@click.argument("name")
@json_option
@click.pass_context
def services_get(ctx: click.Context, name: str, as_json: bool) -> None:
    """Show a service and its instances."""
    service = client(ctx).service(name)
    if as_json:
        output.emit(service, as_json=True)
        return
    instances = service.pop("instances", None)
    output.emit({k: v for k, v in service.items() if k != "checks"}, as_json=False)
    if instances is not None:
        click.echo("")
        output.emit(instances, as_json=False, columns=INSTANCE_COLUMNS)


@services.command("register")
@click.argument("service")
@click.argument("instance_id")
@click.argument("address")
@click.argument("port", type=int)
@click.option(
    "--check",
    "checks",
    multiple=True,
    help='A check as JSON, e.g. \'{"name":"http","kind":"http","path":"/healthz"}\'.',
)
@click.option("--ttl", type=float, help="Add a TTL check named `ttl` (feed it with `cpctl services heartbeat`).")
@click.option("--tag", "tags", multiple=True)
@click.option("--scheme")
@json_option
@click.pass_context
def services_register(
    ctx: click.Context,
    service: str,
    instance_id: str,
    address: str,
    port: int,
    checks: tuple[str, ...],
    ttl: float | None,
    tags: tuple[str, ...],
    scheme: str | None,
    as_json: bool,
) -> None:
    """Register (upsert) an instance; the service is created when it does not exist."""
    body_checks = [json_arg(c, "--check") for c in checks]
    if ttl is not None:
        body_checks.append({"name": "ttl", "kind": "ttl", "ttl": ttl})
    fields: dict[str, Any] = {"tags": list(tags)} if tags else {}
    if scheme:
        fields["scheme"] = scheme
    api = client(ctx)
    try:
        result = api.register(service, instance_id, address, port, checks=body_checks, **fields)
    except NotFound:
        api.service_create(service)
        result = api.register(service, instance_id, address, port, checks=body_checks, **fields)
    output.emit(result if as_json else {k: result.get(k) for k in INSTANCE_COLUMNS}, as_json=as_json)


@services.command("deregister")
@click.argument("service")
@click.argument("instance_id")
@click.pass_context
def services_deregister(ctx: click.Context, service: str, instance_id: str) -> None:
    """Deregister an instance."""
    client(ctx).deregister(service, instance_id)


@services.command("heartbeat")
@click.argument("service")
@click.argument("instance_id")
@click.option("--status", type=click.Choice(["passing", "warning", "critical"]), default="passing")
@click.option("--output", "text", default="")
@click.option("--check")
@json_option
@click.pass_context
def services_heartbeat(
    ctx: click.Context, service: str, instance_id: str, status: str, text: str, check: str | None, as_json: bool
) -> None:
    """Feed an instance's TTL check(s); `--json` prints the checks it fed."""
    fed = client(ctx).heartbeat(service, instance_id, status, text, check=check)
    if as_json:
        output.emit(fed, as_json=True)


# discovery ------------------------------------------------------------------------------------------------
@cli.command("discover")
@click.argument("name")
@click.option("--tag", "tags", multiple=True)
@click.option("--capability")
@click.option("--status", type=click.Choice(["passing"]))
@json_option
@click.pass_context
def discover(
    ctx: click.Context, name: str, tags: tuple[str, ...], capability: str | None, status: str | None, as_json: bool
) -> None:
    """Instances of NAME fit for traffic (from the outage cache, marked stale, when the server is down)."""
    found = client(ctx).discover(name, tag=list(tags) or None, capability=capability, status=status)
    if found.stale:
        click.echo(f"cpctl: control plane unreachable; cached answer, {found.age:.0f} s old", err=True)
    output.emit([i.to_json() for i in found], as_json=as_json, columns=["instance_id", "url", "status", "tags"])


# pipelines ------------------------------------------------------------------------------------------------
@cli.group()
def pipelines() -> None:
    """Pipeline runs."""


@pipelines.command("ls")
@json_option
@click.pass_context
def pipelines_ls(ctx: click.Context, as_json: bool) -> None:
    """List pipelines."""
    output.emit(client(ctx).pipelines(), as_json=as_json, columns=["slug", "name", "enabled", "version"])


@pipelines.command("run")
@click.argument("slug")
@click.option("--payload", required=True, help="JSON, @file.json or - for stdin.")
@click.option("--metadata", help="JSON object.")
@click.option("--tag", "tags", multiple=True)
@click.option("--async", "run_async", is_flag=True, help="Submit to the workers and wait for the result.")
@click.option("--dry-run", is_flag=True, help="Before/after per step; nothing is kept or delivered.")
@click.option("--timeout", "wait_timeout", type=float, default=30.0, help="With --async: seconds to wait.")
@json_option
@click.pass_context
def pipelines_run(
    ctx: click.Context,
    slug: str,
    payload: str,
    metadata: str | None,
    tags: tuple[str, ...],
    run_async: bool,
    dry_run: bool,
    wait_timeout: float,
    as_json: bool,
) -> None:
    """Run SLUG on one packet."""
    api = client(ctx)
    body = json_arg(read_arg(payload, "--payload"), "--payload")
    meta = json_arg(metadata, "--metadata") if metadata else None
    if dry_run:
        result: Any = api.dry_run(slug, body, metadata=meta, tags=list(tags) or None)
    elif run_async:
        result = api.run_async(slug, body, metadata=meta, tags=list(tags) or None).wait(wait_timeout).data
    else:
        result = api.run(slug, body, metadata=meta, tags=list(tags) or None)
    if as_json:
        output.emit(result, as_json=True)
    else:
        packet = result.get("packet") or result.get("output")
        output.emit(
            {
                "status": result.get("status"),
                "routes": result.get("routes"),
                "packet": packet,
                "error": result.get("error"),
            },
            as_json=False,
        )
    if result.get("status") == "failed":
        ctx.exit(output.ERROR)


# keys -----------------------------------------------------------------------------------------------------
@cli.group()
def keys() -> None:
    """API keys (admin scope)."""


@keys.command("ls")
@json_option
@click.pass_context
def keys_ls(ctx: click.Context, as_json: bool) -> None:
    """List keys (prefixes only; keys are never shown again)."""
    output.emit(client(ctx).keys(), as_json=as_json, columns=KEY_COLUMNS)


@keys.command("create")
@click.argument("name")
@click.option("--scope", "scopes", multiple=True, required=True)
@click.option("--rate")
@click.option("--namespace", "namespaces", multiple=True)
@click.option("--expires-at")
@json_option
@click.pass_context
def keys_create(
    ctx: click.Context,
    name: str,
    scopes: tuple[str, ...],
    rate: str | None,
    namespaces: tuple[str, ...],
    expires_at: str | None,
    as_json: bool,
) -> None:
    """Create a key; it is printed this once (last line: the key alone)."""
    created = client(ctx).key_create(
        name, list(scopes), rate=rate, namespaces=list(namespaces) or None, expires_at=expires_at
    )
    if as_json:
        output.emit(created, as_json=True)
        return
    output.emit({k: v for k, v in created.items() if k != "key"}, as_json=False)
    click.echo(created["key"])


@keys.command("revoke")
@click.argument("prefix")
@json_option
@click.pass_context
def keys_revoke(ctx: click.Context, prefix: str, as_json: bool) -> None:
    """Revoke the key with PREFIX (refused from its next request on); `--json` prints the revoked key."""
    revoked = client(ctx).key_revoke(prefix)
    if as_json:
        output.emit(revoked, as_json=True)


# events ---------------------------------------------------------------------------------------------------
@cli.group()
def events() -> None:
    """The event log."""


@events.command("tail")
@click.option("--kind", help="e.g. check.* or config.changed")
@click.option("--since", type=int, help="Start after this event id (default: the last 10 events).")
@click.option("--interval", default="1s", show_default=True)
@click.option("--no-follow", is_flag=True, help="Print and exit.")
@json_option
@click.pass_context
def events_tail(
    ctx: click.Context, kind: str | None, since: int | None, interval: str, no_follow: bool, as_json: bool
) -> None:
    """Print events oldest first, then follow new ones (one JSON object per line with --json)."""
    api = client(ctx)
    pause = duration(interval)
    batch = api.events(kind=kind, since=since, limit=500 if since is not None else 10)
    while True:
        for event in reversed(batch):
            since = max(since or 0, int(event["id"]))
            if as_json:
                click.echo(json.dumps(event, separators=(",", ":")))
            else:  # one line per event as it arrives (a table could not be aligned while following)
                click.echo("  ".join(output.cell(event.get(c)) for c in EVENT_COLUMNS))
        sys.stdout.flush()
        if no_follow:
            return
        time.sleep(pause)
        batch = api.events(kind=kind, since=since or 0, limit=500)


# exec and render ------------------------------------------------------------------------------------------
@cli.command("exec", context_settings={"ignore_unknown_options": True})
@click.option("--namespace", "-n", required=True)
@click.option("--prefix", default="", help="Variable prefix (db.port -> <PREFIX>DB_PORT).")
@click.option("--signal", "reload_signal", help="Send this signal on change instead of restarting (e.g. HUP).")
@click.option("--wait", "settle", default="500ms:5s", show_default=True, help="Settle time min:max after a change.")
@click.option("--splay", default="0s", show_default=True, help="Random delay up to this before acting.")
@click.option("--grace", default="10s", show_default=True, help="SIGKILL the child this long after SIGTERM.")
@click.option("--pristine", is_flag=True, help="Do not pass cpctl's own environment to the child.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def exec_(
    ctx: click.Context,
    namespace: str,
    prefix: str,
    reload_signal: str | None,
    settle: str,
    splay: str,
    grace: str,
    pristine: bool,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND with NAMESPACE as environment variables; restart or signal it on change."""
    from controlplane_client.cli.supervise import run_exec

    signum = None
    if reload_signal:
        name = reload_signal.upper()
        name = name if name.startswith("SIG") else f"SIG{name}"
        if not hasattr(signal, name):
            raise click.BadParameter(f"unknown signal {reload_signal}", param_hint="--signal")
        signum = int(getattr(signal, name))
    cfg = client(ctx).config(namespace)
    if cfg.stale:
        click.echo(f"cpctl exec: control plane unreachable; cached config, {cfg.age:.0f} s old", err=True)
    code = run_exec(
        cfg,
        command,
        prefix=prefix,
        reload_signal=signum,
        settle=wait_range(settle),
        splay=duration(splay),
        grace=duration(grace),
        pristine=pristine,
    )
    ctx.exit(code)


@cli.command("render")
@click.argument("template", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--namespace", "-n", required=True)
@click.option("--exec", "command", help="Run after each write (e.g. 'nginx -s reload').")
@click.option("--wait", "settle", default="500ms:5s", show_default=True, help="Settle time min:max after a change.")
@click.option("--mode", default="600", show_default=True, help="File mode of OUT (octal).")
@click.option("--once", is_flag=True, help="Render once and exit.")
@click.pass_context
def render(
    ctx: click.Context,
    template: Path,
    out: Path,
    namespace: str,
    command: str | None,
    settle: str,
    mode: str,
    once: bool,
) -> None:
    """Render TEMPLATE (Jinja2; `config` holds the namespace) to OUT, again on every change that alters it."""
    from controlplane_client.cli.render import run_render

    cfg = client(ctx).config(namespace)
    ctx.exit(run_render(cfg, template, out, command=command, settle=wait_range(settle), mode=int(mode, 8), once=once))


cli.add_command(config)


def main() -> None:
    cli(prog_name="cpctl")


if __name__ == "__main__":
    main()
