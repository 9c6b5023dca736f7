"""`manage.py serve` supervises its children: restart on crash, clean stop, loud failure to start."""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest

from tests.conftest import subprocess_env
from tests.processes import ServeProcess, pid_alive

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_crashed_worker_is_restarted_and_sigterm_stops_everything(tmp_path) -> None:  # type: ignore[no-untyped-def]
    serve = ServeProcess(subprocess_env(), tmp_path, "--no-beat")
    try:
        serve.wait_ready()
        serve.wait_output("started worker")
        serve.wait_output("ready.")  # the worker's own start-up line
        first_worker = serve.child_pids("worker")[0]
        time.sleep(8.5)  # past the start-up window: a crash now is a restart, not a failure to start
        os.kill(first_worker, signal.SIGKILL)
        serve.wait_output("worker exited with -9")
        serve.wait_output("started worker", count=2, timeout=20)
        second_worker = serve.child_pids("worker")[1]
        assert second_worker != first_worker and pid_alive(second_worker)
        # component-prefixed lines
        assert any(line.startswith("web    | ") for line in serve.output.splitlines())
        assert any(line.startswith("worker | ") for line in serve.output.splitlines())
    finally:
        code = serve.stop()
    assert code == 0, serve.output[-3000:]
    assert "all components stopped" in serve.output
    for name in ("web", "worker", "watch"):
        for pid in serve.child_pids(name):
            assert not pid_alive(pid), (name, pid)


def test_a_child_that_cannot_start_makes_serve_exit_non_zero(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        serve = ServeProcess(subprocess_env(), tmp_path, "--no-beat", "--no-worker", port=taken.getsockname()[1])
        try:
            serve.process.wait(timeout=40)
        finally:
            serve.stop()
    assert serve.process.returncode == 1
    assert "FATAL: web could not start" in serve.output
