"""Start real server processes (gunicorn, uvicorn, manage.py serve) for integration tests."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from controlplane import commandlines


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, process: subprocess.Popen, log: Path, timeout: float = 40.0) -> None:
    """Wait until `url` answers (any status), or fail with the process log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited ({process.returncode}): {log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=1)  # noqa: S310 - loopback test server
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s: {log.read_text()[-3000:]}")


def stop(process: subprocess.Popen, timeout: float = 20.0) -> int:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@contextmanager
def gunicorn(env: dict[str, str], tmp_path: Path, *, workers: int = 2):  # type: ignore[no-untyped-def]
    """gunicorn serving controlplane.wsgi on a free loopback port; yields the base URL."""
    port = free_port()
    log = tmp_path / f"gunicorn-{port}.log"
    with open(log, "w") as handle:
        process = subprocess.Popen(
            commandlines.gunicorn(f"127.0.0.1:{port}", workers=workers),
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz", process, log)
            yield f"http://127.0.0.1:{port}"
        finally:
            stop(process)


class ServeProcess:
    """`manage.py serve` in a subprocess, with its output collected for assertions."""

    def __init__(self, env: dict[str, str], tmp_path: Path, *extra: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.watch_port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / f"serve-{self.port}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [*self.argv(port=self.port, watch_port=self.watch_port), *extra],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parent.parent,
        )

    @staticmethod
    def argv(*, port: int, watch_port: int | None = None) -> list[str]:
        """The `manage.py serve` command line the tests use (small pools: the machine has 2 cores)."""
        return [
            sys.executable,
            "manage.py",
            "serve",
            "--bind",
            f"127.0.0.1:{port}",
            "--watch-bind",
            f"127.0.0.1:{watch_port or free_port()}",
            "--web-workers",
            "1",
            "--worker-concurrency",
            "1",
            "--grace",
            "15",
        ]

    @property
    def output(self) -> str:
        return self.log_path.read_text()

    def child_pids(self, name: str) -> list[int]:
        import re

        return [int(pid) for pid in re.findall(rf"started {name} \(pid (\d+)\)", self.output)]

    def wait_output(self, text: str, timeout: float = 40.0, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.output.count(text) >= count:
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"{text!r} x{count} not seen; output:\n{self.output[-4000:]}")

    def wait_ready(self) -> None:
        wait_http(f"{self.base}/healthz", self.process, self.log_path, timeout=60)

    def stop(self, timeout: float = 40.0) -> int:
        code = stop(self.process, timeout)
        self._log.close()
        return code


def descendants(pid: int) -> set[int]:
    """Every live descendant of `pid` (children, grandchildren, ...), from /proc."""
    import os

    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                ppid = int(stat.read().rsplit(") ", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def port_free(port: int) -> bool:
    """Nothing listens on 127.0.0.1:`port` (TIME_WAIT leftovers do not count, as for a server restarting)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pid_alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie that nobody reaped yet counts as gone
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False
