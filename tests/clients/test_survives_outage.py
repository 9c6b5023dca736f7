"""The control plane stopped and restarted under a running client: the outage cache answers stale and says
so (holding secrets only for a key that may read them, in a 0600 file), and a watcher survives the restart
and ends on the final value. Runs after the other server tests (file order): it stops the shared server and starts it again."""

from __future__ import annotations

import json
import stat
import threading
import time

import pytest
from controlplane_client import Config, ConnectionFailed, Unavailable

from tests.clients.conftest import DB
from tests.clients.controlplane import ControlPlane

pytestmark = [pytest.mark.integration, DB]


def test_outage_cache_and_a_watcher_across_a_restart(cp: ControlPlane, namespace: str, name: str) -> None:
    admin = cp.client()
    admin.config_put(namespace, "db.port", 5432)
    admin.config_put(namespace, "psp.key", "sk_live_very_secret", secret=True)
    admin.service_create(name)
    admin.register(name, "i-1", "127.0.0.1", 9600, checks=[{"name": "ttl", "kind": "ttl", "ttl": 300}])
    admin.heartbeat(name, "i-1")

    reader = cp.client(cp.key("config:read", "registry:read"), retries=0)
    revealer = cp.client(cp.key("config:read", "config:secrets"), retries=0)
    fresh = reader.config(namespace)
    assert fresh["psp.key"] == "********" and not fresh.stale and fresh.age == 0
    assert revealer.config(namespace)["psp.key"] == "sk_live_very_secret"
    assert [i.instance_id for i in reader.discover(name)] == ["i-1"]
    reader_file = reader.cache.path("config", namespace)  # type: ignore[union-attr]
    revealer_file = revealer.cache.path("config", namespace)  # type: ignore[union-attr]
    assert reader_file != revealer_file
    # The key without config:secrets never had the secret, so neither has its copy.
    assert "sk_live_very_secret" not in reader_file.read_text() and "********" in reader_file.read_text()
    assert "sk_live_very_secret" in revealer_file.read_text()
    for path in (reader_file, revealer_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ok_cli(cp, "config", "get", namespace, "--json")["db"]["port"] == 5432  # fills cpctl's cache

    watcher_values: list[Config] = []
    stop = threading.Event()
    watching = admin.config(namespace)

    def watch() -> None:
        for cfg in watching.watch(wait=5, stop=stop, max_backoff=2.0):
            watcher_values.append(cfg)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    time.sleep(0.5)
    assert cp.stop() == 0
    try:
        time.sleep(1.1)
        stale = reader.config(namespace)
        assert (
            stale.stale is True and stale.age >= 1.0 and stale["db.port"] == 5432 and stale.revision == fresh.revision
        )
        found = reader.discover(name)
        assert found.stale and found.age >= 1.0 and [i.instance_id for i in found] == ["i-1"]
        with pytest.raises(ConnectionFailed):
            cp.client(cp.admin_key, cache_dir=False, retries=0).config(namespace)  # no cache: the error itself
        with pytest.raises(Unavailable):
            reader.config(f"{namespace}-never-read")  # nothing cached for it
        cli = cp.cpctl("config", "get", namespace, "--json")
        assert cli.returncode == 0 and json.loads(cli.stdout)["db"]["port"] == 5432 and "cached" in cli.stderr
        assert thread.is_alive()  # the watcher backs off; it has not given up
    finally:
        cp.start()
    for port in (6001, 6002, 6003):  # written while the watcher may still be backing off
        admin.config_put(namespace, "db.port", port)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (watcher_values and watcher_values[-1]["db.port"] == 6003):
        time.sleep(0.1)
    stop.set()
    assert watcher_values and watcher_values[-1]["db.port"] == 6003 and not watcher_values[-1].stale
    assert reader.config(namespace).stale is False


def ok_cli(cp: ControlPlane, *args: str) -> dict:  # type: ignore[type-arg]
    result = cp.cpctl(*args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
