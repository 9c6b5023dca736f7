"""A real control plane (`manage.py serve`) for the client SDK tests, restartable on the same ports.

tests/processes.ServeProcess picks a fresh watch port per start; the client tests restart the control
plane under a running watcher, so both ports must survive a restart. The command line is the one
ServeProcess builds (controlplane/commandlines.py underneath), so what is tested is what `serve` runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from controlplane_client import Client

from tests.processes import ServeProcess, free_port, stop, wait_http

REPO = Path(__file__).resolve().parents[2]
CPCTL = str(Path(sys.executable).with_name("cpctl"))


class ControlPlane:
    """`serve` on fixed loopback ports; `stop()`/`start()` keep them, `client()` builds SDK clients for it."""

    def __init__(self, env: dict[str, str], tmp: Path, *, production: bool) -> None:
        self.env, self.tmp, self.production = env, tmp, production
        self.port, self.watch_port = free_port(), free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        # Production: gunicorn on --bind, the ASGI watch server on --watch-bind. Embedded: one ASGI process.
        self.watch = f"http://127.0.0.1:{self.watch_port}" if production else self.base
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.admin_key = ""

    @property
    def log_path(self) -> Path:
        return self.tmp / f"serve-{self.port}-{self.starts}.log"

    def start(self) -> None:
        self.starts += 1
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                ServeProcess.argv(port=self.port, watch_port=self.watch_port),
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        wait_http(f"{self.base}/healthz", self.process, self.log_path, timeout=90)
        if self.production:
            wait_http(f"{self.watch}/healthz", self.process, self.log_path, timeout=60)
        self.wait_output("controlplane is up")

    def wait_output(self, text: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log_path.read_text():
                return
            assert self.process is not None and self.process.poll() is None, self.log_path.read_text()[-3000:]
            time.sleep(0.2)
        raise AssertionError(f"{text!r} not seen: {self.log_path.read_text()[-3000:]}")

    def stop(self) -> int:
        assert self.process is not None
        return stop(self.process, timeout=40)

    def client(self, key: str | None = None, **kwargs: Any) -> Client:
        kwargs.setdefault("cache_dir", self.tmp / "cache")
        return Client(self.base, key or self.admin_key, watch_url=self.watch, **kwargs)

    def key(self, *scopes: str, **fields: Any) -> str:
        """A fresh API key holding `scopes`, created through the API with the admin key."""
        with self.client() as admin:
            return admin.key_create(f"test-{os.urandom(3).hex()}", list(scopes), **fields)["key"]

    def cli_env(self, key: str | None = None, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            CONTROLPLANE_URL=self.base,
            CONTROLPLANE_WATCH_URL=self.watch,
            CONTROLPLANE_API_KEY=key or self.admin_key,
            PYTHONUNBUFFERED="1",
            # cpctl's outage cache (the user cache directory) under the test's own directory, not ~/.cache.
            XDG_CACHE_HOME=str(self.tmp / "xdg-cache"),
            **extra,
        )
        return env

    def cpctl(
        self,
        *args: str,
        key: str | None = None,
        input: str | None = None,  # noqa: A002
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CPCTL, *args],
            env=self.cli_env(key),
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
            check=False,
        )
