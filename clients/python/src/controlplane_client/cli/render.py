"""`cpctl render`: a Jinja2 template filled with a namespace's config, kept current (consul-template).

The output is written atomically (temporary file in the same directory, fsync, rename) and only when the
rendered text differs from what the file holds, and only then is `--exec` run; changes are debounced
with `--wait min:max`. Templates run in Jinja2's sandbox with undefined names as errors, so a typo in a
key fails loudly instead of rendering an empty value.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shlex
import subprocess
import tempfile
from pathlib import Path

import click
import jinja2
import jinja2.sandbox

from controlplane_client.cli.follow import ConfigFeed
from controlplane_client.config import Config, Debouncer
from controlplane_client.errors import ControlPlaneError


def load_template(path: Path) -> jinja2.Template:
    # Config files, not HTML: no autoescaping. The sandbox keeps a template from reaching Python internals.
    env = jinja2.sandbox.SandboxedEnvironment(
        loader=jinja2.FileSystemLoader(str(path.parent)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - renders config files (nginx, ini), not HTML
    )
    return env.get_template(path.name)


def render_text(template: jinja2.Template, config: Config) -> str:
    return template.render(config=config.to_dict(), namespace=config.namespace, revision=config.revision)


def write_if_changed(path: Path, text: str, *, mode: int) -> bool:
    """Atomically replace `path` with `text` unless it already holds exactly that; True when written."""
    try:
        if path.read_text() == text:
            return False
    except FileNotFoundError:
        pass
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return True


def run_command(command: str | None) -> None:
    if not command:
        return
    result = subprocess.run(shlex.split(command), check=False)
    if result.returncode:
        click.echo(f"cpctl render: {command!r} exited {result.returncode}", err=True)


def render_once(template: jinja2.Template, config: Config, out: Path, *, mode: int, command: str | None) -> bool:
    written = write_if_changed(out, render_text(template, config), mode=mode)
    if written:
        click.echo(f"cpctl render: wrote {out} (revision {config.revision})", err=True)
        run_command(command)
    return written


def run_render(
    config: Config,
    template_path: Path,
    out: Path,
    *,
    command: str | None,
    settle: tuple[float, float],
    mode: int,
    once: bool,
    watch_wait: float = 30.0,
) -> int:
    template = load_template(template_path)
    render_once(template, config, out, mode=mode, command=command)
    if once:
        return 0
    feed = ConfigFeed(config, wait=watch_wait)
    feed.start()
    debouncer = Debouncer(*settle)
    latest: Config | None = None
    try:
        while True:
            remaining = debouncer.remaining()
            try:
                item = feed.queue.get(timeout=remaining if remaining is not None else None)
            except queue.Empty:  # the settle time is up
                item = None
            if isinstance(item, ControlPlaneError):
                raise item
            if item is not None:
                latest = item
                debouncer.add()
            if latest is not None and debouncer.due():
                debouncer.reset()
                try:
                    render_once(template, latest, out, mode=mode, command=command)
                except jinja2.TemplateError as exc:  # keep the last good file; say why
                    click.echo(f"cpctl render: {template_path}: {exc}", err=True)
                latest = None
    finally:
        feed.stop()
