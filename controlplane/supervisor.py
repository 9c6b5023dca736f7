"""A small process supervisor for `manage.py serve`: start children, prefix their output, restart
crashes with backoff, stop everything on SIGTERM/SIGINT.

It supervises the project's own processes on one machine (web, workers, beat, watch server); across
machines, use systemd or the platform's orchestrator with the same commands (docs/operations.md).

Nothing outlives the supervisor, even when it is killed with SIGKILL (issue #10, point 4):

* each child runs in its own process group and gets `PR_SET_PDEATHSIG` (SIGKILL) on Linux, so it dies
  with the supervisor;
* the children's own children (gunicorn workers, Celery pool processes) get no such signal, so a small
  guard process (this file run as `python -P supervisor.py guard`, started first) learns each child's
  process group and, when its pipe from the supervisor closes without a clean "done", terminates and
  then kills every one of those groups. The guard also inherits the data-directory lock of `serve`, so a second
  `serve` cannot start until the last process of the first one is gone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
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
    #: A line fragment the child prints once it serves (e.g. celery's "ready."); None: ready at start.
    ready_text: str | None = None
    ready: bool = False


class StartupFailed(Exception):
    """A child exited during its start-up window: the system cannot start as configured."""


PR_SET_PDEATHSIG = 1


def _parent_death_signal() -> Callable[[], None] | None:
    """A pre-exec hook that makes the child receive SIGKILL when the supervisor dies (Linux only).

    libc and prctl are looked up here, before any fork, so the hook only makes one system call between
    fork and exec. The signal survives exec; a supervisor that died before the call is caught by the
    parent-pid check right after it.
    """
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    prctl = libc.prctl
    parent = os.getpid()

    def hook() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:
            os._exit(1)

    return hook


class Guard:
    """The supervisor's side of the guard process: tells it each child's process group."""

    def __init__(self, *, keep_fds: tuple[int, ...] = ()) -> None:
        self.process = subprocess.Popen(
            # This file run as a script, not `-m controlplane.supervisor`: the package imports Celery, and the
            # guard needs only the standard library (10 MB instead of 35 MB). -P: no script dir on sys.path.
            [sys.executable, "-P", os.path.abspath(__file__), "guard"],
            stdin=subprocess.PIPE,
            text=True,
            bufsize=1,
            pass_fds=keep_fds,
            start_new_session=True,  # Ctrl-C in the terminal must not reach it
        )

    def watch(self, pgid: int) -> None:
        self._send(f"pgid {pgid}")

    def done(self) -> None:
        """Everything stopped cleanly: the guard exits without killing anything."""
        self._send("done")
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=10)

    def _send(self, line: str) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError):
            logger.warning("serve: the guard process is gone; children may outlive a killed supervisor")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def guard_main(stream=None, grace: float = 3.0) -> int:  # type: ignore[no-untyped-def]
    """The guard process: on EOF without "done", SIGTERM each known group, then SIGKILL what is left."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stream = stream or sys.stdin
    groups: list[int] = []
    for line in stream:
        word, _, value = line.strip().partition(" ")
        if word == "done":
            return 0
        if word == "pgid" and value.isdigit():
            groups.append(int(value))
    # The supervisor went away without a clean stop.
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_group_alive(pgid) for pgid in groups):
        time.sleep(0.1)
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return 0


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
        on_ready: Callable[[], None] | None = None,
        keep_fds: tuple[int, ...] = (),
    ) -> None:
        self.children = children
        self.on_ready = on_ready
        self.keep_fds = keep_fds
        self.guard: Guard | None = None
        self._announced_ready = False
        self._preexec = _parent_death_signal()
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
            self.out.write(f"{name:<12}| {line}\n")
            self.out.flush()

    def _pump(self, child: Child, process: subprocess.Popen) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.rstrip("\n")
            child.tail.append(line)
            if child.ready_text and not child.ready and child.ready_text in line:
                child.ready = True
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
            preexec_fn=self._preexec,  # one prctl call between fork and exec, see _parent_death_signal
        )
        if self.guard is not None:
            self.guard.watch(child.process.pid)  # its own session: pgid == pid
        child.ready = child.ready_text is None
        child.started_at = time.monotonic()
        threading.Thread(target=self._pump, args=(child, child.process), daemon=True).start()
        self.emit("serve", f"started {child.name} (pid {child.process.pid}): {' '.join(child.argv)}")

    def request_stop(self, *_: object) -> None:
        self._stop.set()

    def run(self) -> int:
        """Start every child and supervise until a stop is requested; returns the exit status."""
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        self.guard = Guard(keep_fds=self.keep_fds)
        for child in self.children:
            self.start(child)
        try:
            while not self._stop.wait(0.2):
                self._check_children()
                self._maybe_announce_ready()
        except StartupFailed as exc:
            self.emit("serve", f"FATAL: {exc}")
            self.stop_all()
            return 1
        self.stop_all()
        return 0

    def _maybe_announce_ready(self) -> None:
        if self._announced_ready or not all(c.process is not None and c.ready for c in self.children):
            return
        self._announced_ready = True
        if self.on_ready is not None:
            with self._out_lock:
                self.on_ready()

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
            _kill_group(process.pid)  # its pool processes, if it left any behind
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
        for child in self.children:
            if child.process is not None:
                _kill_group(child.process.pid)  # a pool process that outlived its stopped parent
        if self.guard is not None:
            self.guard.done()
        self.emit("serve", "all components stopped")


if __name__ == "__main__" and sys.argv[1:] == ["guard"]:
    raise SystemExit(guard_main())
