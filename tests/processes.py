"""Start real server processes (gunicorn, uvicorn, manage.py serve) for integration tests."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path


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
            [
                sys.executable,
                "-m",
                "gunicorn",
                "controlplane.wsgi:application",
                "-c",
                "python:controlplane.gunicorn_conf",
                "-b",
                f"127.0.0.1:{port}",
                "-w",
                str(workers),
            ],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz", process, log)
            yield f"http://127.0.0.1:{port}"
        finally:
            stop(process)
