"""A small process supervisor for `manage.py serve`: start children, prefix their output, restart
crashes with backoff, stop everything on SIGTERM/SIGINT.

It supervises the project's own processes on one machine (web, worker, beat, watch server); across
machines, use systemd or the platform's orchestrator with the same commands (docs/operations.md).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field

logger = logging.getLogger("controlplane.serve")


@dataclass
class Child:
    """One supervised command and its restart bookkeeping."""

    name: str
    argv: list[str]
    env: dict[str, str] | None = None
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    restarts: int = 0
    next_start_at: float = 0.0
    ever_stable: bool = False
    tail: deque = field(default_factory=lambda: deque(maxlen=20))


class StartupFailed(Exception):
    """A child exited during its start-up window: the system cannot start as configured."""


class Supervisor:
    """Runs children until told to stop; see the module docstring."""

    def __init__(
        self,
        children: list[Child],
        *,
        startup_window: float = 8.0,
        stable_after: float = 30.0,
        max_backoff: float = 30.0,
        grace: float = 20.0,
        out=None,  # type: ignore[no-untyped-def]
    ) -> None:
        self.children = children
        self.startup_window = startup_window
        self.stable_after = stable_after
        self.max_backoff = max_backoff
        self.grace = grace
        self.out = out or sys.stdout
        self._stop = threading.Event()
        self._out_lock = threading.Lock()

    # --- output -----------------------------------------------------------------------------
    def emit(self, name: str, line: str) -> None:
        with self._out_lock:
            self.out.write(f"{name:<7}| {line}\n")
            self.out.flush()

    def _pump(self, child: Child, process: subprocess.Popen) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.rstrip("\n")
            child.tail.append(line)
            self.emit(child.name, line)

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self, child: Child) -> None:
        child.process = subprocess.Popen(
            child.argv,
            env=child.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,  # signals from the terminal reach only the supervisor
        )
        child.started_at = time.monotonic()
        threading.Thread(target=self._pump, args=(child, child.process), daemon=True).start()
        self.emit("serve", f"started {child.name} (pid {child.process.pid}): {' '.join(child.argv)}")

    def request_stop(self, *_: object) -> None:
        self._stop.set()

    def run(self) -> int:
        """Start every child and supervise until a stop is requested; returns the exit status."""
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        for child in self.children:
            self.start(child)
        try:
            while not self._stop.wait(0.2):
                self._check_children()
        except StartupFailed as exc:
            self.emit("serve", f"FATAL: {exc}")
            self.stop_all()
            return 1
        self.stop_all()
        return 0

    def _check_children(self) -> None:
        now = time.monotonic()
        for child in self.children:
            process = child.process
            if process is None:
                if now >= child.next_start_at:
                    self.start(child)
                continue
            code = process.poll()
            if code is None:
                if not child.ever_stable and now - child.started_at > self.startup_window:
                    child.ever_stable = True
                if now - child.started_at > self.stable_after:
                    child.restarts = 0
                continue
            uptime = now - child.started_at
            if not child.ever_stable and uptime < self.startup_window:
                reason = " / ".join(list(child.tail)[-5:]) or "no output"
                raise StartupFailed(f"{child.name} could not start (exit {code} after {uptime:.1f} s): {reason}")
            child.restarts += 1
            delay = min(2 ** (child.restarts - 1), self.max_backoff)
            self.emit("serve", f"{child.name} exited with {code} after {uptime:.1f} s; restarting in {delay:.0f} s")
            child.process = None
            child.next_start_at = now + delay

    def stop_all(self) -> None:
        """SIGTERM every child, wait up to `grace` seconds, then SIGKILL what is left."""
        running = [c for c in self.children if c.process is not None and c.process.poll() is None]
        for child in running:
            self.emit("serve", f"stopping {child.name} (pid {child.process.pid})")
            try:
                # Only the child's main process: celery and gunicorn stop their own pools gracefully.
                os.kill(child.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + self.grace
        for child in running:
            remaining = max(deadline - time.monotonic(), 0.1)
            try:
                child.process.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                self.emit("serve", f"{child.name} did not stop within {self.grace:.0f} s; killing")
                try:
                    os.killpg(child.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                child.process.wait()
        self.emit("serve", "all components stopped")
