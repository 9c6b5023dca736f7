"""`cpctl exec`: run a command with a namespace as environment variables and restart (or signal) it on change.

envconsul's model: the child gets the parent's environment plus one variable per config key; when the
config changes, the supervisor waits for it to settle (`--wait min:max`), sleeps a random splay (so a
fleet does not restart at once), then either sends `--signal` or restarts the child (SIGTERM to its
process group, SIGKILL after `--grace`). Signals sent to cpctl are passed to the child; when the child
exits on its own, cpctl exits with its code (128+N when it died of signal N).
"""

from __future__ import annotations

import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

import click

from controlplane_client.cli.follow import ConfigFeed, config_env
from controlplane_client.config import Config, Debouncer
from controlplane_client.errors import ControlPlaneError

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
ENDING = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)


def exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


class Child:
    """The supervised process, in its own session so the whole group is signalled and killed together."""

    def __init__(self, argv: Sequence[str], *, grace: float) -> None:
        self.argv, self.grace = list(argv), grace
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, env: dict[str, str]) -> None:
        try:
            self.process = subprocess.Popen(self.argv, env=env, start_new_session=True)
        except OSError as exc:
            raise click.ClickException(f"cannot start {self.argv[0]}: {exc}") from exc

    def send(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signum)
            except ProcessLookupError:
                pass

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after the grace period; the exit status."""
        assert self.process is not None
        self.send(signal.SIGTERM)
        try:
            return self.process.wait(timeout=self.grace)
        except subprocess.TimeoutExpired:
            self.send(signal.SIGKILL)
            return self.process.wait()

    def poll(self) -> int | None:
        return None if self.process is None else self.process.poll()


def run_exec(
    config: Config,
    argv: Sequence[str],
    *,
    prefix: str,
    reload_signal: int | None,
    settle: tuple[float, float],
    splay: float,
    grace: float,
    pristine: bool,
    watch_wait: float = 30.0,
) -> int:
    """Supervise `argv` until it exits on its own or cpctl is told to stop; returns the exit code to use."""
    base_env = {} if pristine else dict(os.environ)
    current = config_env(config, prefix)
    child = Child(argv, grace=grace)
    child.start({**base_env, **current})
    ending = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        received.append(signum)
        child.send(signum)
        if signum in ENDING:
            ending.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in FORWARDED}
    feed = ConfigFeed(config, wait=watch_wait)
    feed.start()
    debouncer = Debouncer(*settle)
    pending: dict[str, str] | None = None
    revision = config.revision
    try:
        while True:
            code = child.poll()
            if code is not None:
                return exit_code(code)
            if ending.is_set():
                process = child.process
                assert process is not None
                try:
                    return exit_code(process.wait(timeout=grace))
                except subprocess.TimeoutExpired:
                    child.send(signal.SIGKILL)
                    return exit_code(process.wait())
            remaining = debouncer.remaining()
            try:
                item = feed.queue.get(timeout=min(0.1, remaining) if remaining is not None else 0.1)
            except queue.Empty:
                item = None
            if isinstance(item, ControlPlaneError):
                click.echo(f"cpctl exec: watch ended: {item}", err=True)
            elif item is not None:
                env = config_env(item, prefix)
                if env != current:
                    pending, revision = env, item.revision
                    debouncer.add()
            if pending is not None and debouncer.due():
                debouncer.reset()
                if splay:
                    time.sleep(random.uniform(0, splay))
                if reload_signal is not None:
                    child.send(reload_signal)
                    current = pending
                else:
                    child.stop()
                    current = pending
                    if ending.is_set():
                        continue
                    child.start({**base_env, **current})
                    click.echo(
                        f"cpctl exec: restarted {argv[0]} (pid {child.process.pid if child.process else '?'}) "
                        f"for {config.namespace} revision {revision}",
                        err=True,
                    )
                pending = None
    finally:
        feed.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if child.poll() is None:
            child.stop()
        sys.stdout.flush()
