"""The one-screen tour of clients/python/README.md, run as written (its shell block, with bash) against the
real control plane of the fixtures: what a newcomer sees after `make run` (which loads the `payments` demo
namespace and prints an admin key; here the fixture's admin key and a `payments` namespace made the same way)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from controlplane_client import Conflict, NotFound

from tests.clients.conftest import DB
from tests.clients.controlplane import ControlPlane

pytestmark = [pytest.mark.integration, DB]

README = Path(__file__).resolve().parents[2] / "clients" / "python" / "README.md"
PAUSE_FACTOR = 3


def tour_script() -> str:
    text = README.read_text()
    tour = text[text.index("## A one-screen tour") :]
    block = re.search(r"```sh\n(.*?)```", tour, re.S)
    assert block, "the tour's shell block"
    lines = block.group(1).splitlines()
    # The reader exports the URL and the key from make run's start-up block; the test's environment has them.
    assert lines[0].startswith("export CONTROLPLANE_URL=")
    # The pauses are a person's at a quiet terminal; a CI machine under load can take longer than that to
    # start a `cpctl` (CI once saw `cpctl render` miss a 2 s pause), so each one is tripled here.
    script = re.sub(
        r"\bsleep (\d+)\b", lambda match: f"sleep {int(match.group(1)) * PAUSE_FACTOR}", "\n".join(lines[1:])
    )
    return script + "\nwait\n"


def test_the_readme_tour_works_as_written(cp: ControlPlane, tmp_path: Path) -> None:
    with cp.client() as admin:
        try:
            admin.namespace_create("payments", "Payment service settings (demo).")
        except Conflict:
            pass
        admin.config_put("payments", "db.host", "db.internal")
        admin.config_put("payments", "db.port", 5432)
        env = cp.cli_env()
        env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"  # `python` and `cpctl` of this venv
        env["XDG_CACHE_HOME"] = str(tmp_path / "cache")  # the outage cache's default home, not the user's
        result = subprocess.run(
            ["bash", "-c", tour_script()],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        out = result.stdout
        assert result.returncode == 0, (out, result.stderr)
        assert "hello-1 registered" in out  # 1. registered, heartbeating
        assert "hello-1" in out.split("hello-1 registered", 1)[1]  # 2. cpctl discover lists it
        assert "http://127.0.0.1:9000" in out  # the balancer picked it
        assert "child started: db port 6433" in out  # 4. exec's child, then restarted on the change
        assert "child started: db port 6434" in out
        assert "upstream db { server db2.internal:6434; }" in out  # 5. rendered after the change, printed
        assert (tmp_path / "db.conf").read_text() == "upstream db { server db2.internal:6434; }\n"
        # The outage cache's default home is the platform's user cache directory ($XDG_CACHE_HOME here).
        assert list((tmp_path / "cache" / "controlplane-client").glob("*/config/payments.json"))
        with pytest.raises(NotFound):  # SIGTERM from `kill` deregistered it
            admin.instance("hello", "hello-1")
