"""`manage.py serve` supervises its children: restart on crash, clean stop, loud failure to start, nothing
left behind when it is killed, one `serve` (and one beat) per data directory, the start-up block."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from django.conf import settings

from controlplane import commandlines
from controlplane.management.commands.bootstrap import CREDENTIALS_FILE
from tests.conftest import subprocess_env
from tests.processes import ServeProcess, descendants, free_port, pid_alive, port_free

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

WORKERS = commandlines.QUEUES  # serve names each worker after its queue


def _wait(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return bool(predicate())


def test_crashed_worker_is_restarted_and_sigterm_stops_everything(tmp_path) -> None:  # type: ignore[no-untyped-def]
    serve = ServeProcess(subprocess_env(), tmp_path, "--no-beat")
    try:
        serve.wait_ready()
        serve.wait_output("controlplane is up")
        first_worker = serve.child_pids("probes")[0]
        time.sleep(8.5)  # past the start-up window: a crash now is a restart, not a failure to start
        os.kill(first_worker, signal.SIGKILL)
        serve.wait_output("probes exited with -9")
        serve.wait_output("started probes", count=2, timeout=20)
        second_worker = serve.child_pids("probes")[1]
        assert second_worker != first_worker and pid_alive(second_worker)
        # component-prefixed lines
        lines = serve.output.splitlines()
        assert any(line.startswith("web         | ") for line in lines)
        assert any(line.startswith("probes      | ") for line in lines)
        assert any(line.startswith("deliveries  | ") for line in lines)
        tree = descendants(serve.process.pid)
    finally:
        code = serve.stop()
    assert code == 0, serve.output[-3000:]
    assert "all components stopped" in serve.output
    assert _wait(lambda: not any(pid_alive(pid) for pid in tree), 5), [p for p in tree if pid_alive(p)]


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


def test_sigkill_of_serve_takes_every_descendant_and_frees_the_port_and_the_lock(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = subprocess_env()
    serve = ServeProcess(env, tmp_path, "--web-workers", "2")
    try:
        serve.wait_ready()
        serve.wait_output("controlplane is up", timeout=60)
        tree = descendants(serve.process.pid)
        named = {name: serve.child_pids(name) for name in ("web", "watch", *WORKERS, "beat")}
        # web/watch/each worker/beat, plus the grandchildren: Celery pool processes (and gunicorn workers).
        assert len(tree) >= len([pids for pids in named.values() if pids]) + len(WORKERS), tree

        # While it lives: a second serve on the same data directory refuses, and so does a second beat.
        second = subprocess.run(
            [*ServeProcess.argv(port=free_port()), "--no-beat"],
            env=env,
            cwd=Path(__file__).resolve().parents[2],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode != 0
        assert "Another `serve`" in second.stderr and str(settings.VAR_DIR) in second.stderr, second.stderr[-2000:]
        beat = subprocess.run(commandlines.celery_beat(), env=env, capture_output=True, text=True, timeout=60)
        assert beat.returncode != 0
        assert "Another Celery beat" in beat.stdout + beat.stderr, (beat.stdout + beat.stderr)[-2000:]

        serve.process.send_signal(signal.SIGKILL)
        serve.process.wait(10)
        assert _wait(lambda: not any(pid_alive(pid) for pid in tree), 8), [
            (pid, Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")) for pid in tree if pid_alive(pid)
        ]
        assert port_free(serve.port) and port_free(serve.watch_port)
    finally:
        serve.stop()

    # The lock went with the last process: a new serve starts on the same data directory and port.
    again = ServeProcess(env, tmp_path, "--no-beat", "--no-worker", port=serve.port)
    try:
        again.wait_ready()
    finally:
        assert again.stop() == 0, again.output[-3000:]


def test_the_start_up_block_shows_the_first_run_credentials_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from django.core.management import call_command

    call_command("bootstrap", "--no-demo", stdout=open(os.devnull, "w"))  # noqa: SIM115
    credentials = Path(settings.VAR_DIR) / CREDENTIALS_FILE
    if settings.PRODUCTION:  # serve's output is a log there: bootstrap keeps nothing for it
        assert not credentials.exists()
    else:
        assert credentials.exists() and (credentials.stat().st_mode & 0o777) == 0o600
    serve = ServeProcess(subprocess_env(), tmp_path, "--no-beat")
    try:
        serve.wait_output("controlplane is up", timeout=60)
    finally:
        serve.stop()
    output = serve.output
    block = output[output.index("controlplane is up") :]
    # After every component's start-up lines, not buried among them.
    for name in ("web", *WORKERS):
        assert f"started {name}" in output[: output.index("controlplane is up")]
    if settings.PRODUCTION:
        assert "Admin login" not in block and "API key (every scope)" not in block
    else:
        assert "Admin login:   admin / " in block and "API key (every scope):" in block
    assert "bootstrap --reset-credentials" in block
    # Where a newcomer goes first: `/` signs a staff user in and lands on the dashboard.
    assert f"Dashboard: {serve.base}/ " in block and f"Status:    {serve.base}/status/" in block
    assert not credentials.exists(), "the plaintext must not stay on disk once shown"


def test_reset_credentials_replaces_password_and_key(db) -> None:  # type: ignore[no-untyped-def]
    from io import StringIO

    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from controlplane.access.models import APIKey
    from controlplane.access.services import api_key_revoke
    from controlplane.management.commands.bootstrap import BOOTSTRAP_KEY_NAME

    call_command("bootstrap", "--no-demo", stdout=StringIO())
    first_key = APIKey.objects.get(name=BOOTSTRAP_KEY_NAME)
    out = StringIO()
    call_command("bootstrap", "--no-demo", stdout=out)
    assert "shown once" not in out.getvalue(), "a second run prints no secret"
    out = StringIO()
    call_command("bootstrap", "--no-demo", "--reset-credentials", stdout=out)
    password = out.getvalue().split("Admin user: admin / ", 1)[1].split()[0]
    assert get_user_model().objects.get(username="admin").check_password(password)
    first_key.refresh_from_db()
    assert first_key.revoked
    assert APIKey.objects.filter(name=BOOTSTRAP_KEY_NAME, revoked=False).count() == 1
    # A revoked bootstrap key is not silently re-created by the next plain run (make run runs bootstrap).
    for key in APIKey.objects.filter(name=BOOTSTRAP_KEY_NAME, revoked=False):
        api_key_revoke(key, actor="test")
    call_command("bootstrap", "--no-demo", stdout=StringIO())
    assert not APIKey.objects.filter(name=BOOTSTRAP_KEY_NAME, revoked=False).exists()
    assert Path(settings.CONFIG_SOURCE_ROOT).is_dir()
    (Path(settings.VAR_DIR) / CREDENTIALS_FILE).unlink(missing_ok=True)


@pytest.mark.parametrize(
    "grandchild",
    [
        "sleep 300 &",  # an ordinary grandchild: SIGTERM from the guard
        "(trap '' TERM; exec sleep 300) &",  # one that ignores SIGTERM: SIGKILL after the guard's grace
    ],
)
def test_grandchildren_that_would_outlive_a_killed_supervisor_are_killed_by_the_guard(tmp_path, grandchild) -> None:  # type: ignore[no-untyped-def]
    # Celery's pool processes and gunicorn's workers happen to notice their parent's death; a grandchild
    # that does not (this one) must still go, which only the guard's process-group kill does.
    script = (
        "from controlplane.supervisor import Child, Supervisor\n"
        f"Supervisor([Child('family', ['sh', '-c', {grandchild + ' echo grandchild $!; wait'!r}])]).run()\n"
    )
    log = tmp_path / "supervisor.log"
    with open(log, "w") as handle:
        supervisor = subprocess.Popen(
            [os.sys.executable, "-c", script], stdout=handle, stderr=subprocess.STDOUT, cwd=Path(__file__).parents[2]
        )
    try:
        assert _wait(lambda: re.search(r"grandchild \d+", log.read_text()), 30), log.read_text()
        grandchild_pid = int(re.search(r"grandchild (\d+)", log.read_text()).group(1))
        child_pid = int(re.search(r"started family \(pid (\d+)\)", log.read_text()).group(1))
        assert pid_alive(grandchild_pid) and pid_alive(child_pid)
        supervisor.kill()
        supervisor.wait(10)
        assert _wait(lambda: not pid_alive(child_pid), 3), "PR_SET_PDEATHSIG did not take the child"
        assert _wait(lambda: not pid_alive(grandchild_pid), 8), "the grandchild outlived the supervisor"
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
