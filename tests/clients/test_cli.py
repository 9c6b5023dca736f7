"""`cpctl` (the installed console script) against a real `serve`: every command, tables and --json, exit codes,
`cpctl exec` restarting or signalling its child on a change and passing signals through, `cpctl render`
writing once per real change."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.clients.conftest import DB
from tests.clients.controlplane import CPCTL, ControlPlane

pytestmark = [pytest.mark.integration, DB]


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result.stdout


def wait_until(predicate, timeout: float, interval: float = 0.05):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def test_services_discover_and_exit_codes(cp: ControlPlane, name: str) -> None:
    out = ok(cp.cpctl("services", "register", name, "i-1", "127.0.0.1", "9000", "--ttl", "60", "--tag", "v2"))
    assert "i-1" in out
    fed = json.loads(
        ok(cp.cpctl("services", "heartbeat", name, "i-1", "--status", "warning", "--output", "slow", "--json"))
    )
    assert [(c["name"], c["status"]) for c in fed] == [("ttl", "warning")]
    assert ok(cp.cpctl("services", "heartbeat", name, "i-1")) == ""
    listing = ok(cp.cpctl("services", "ls"))
    assert listing.splitlines()[0].split()[:2] == ["NAME", "TYPE"] and name in listing
    assert name in [s["name"] for s in json.loads(ok(cp.cpctl("services", "ls", "--json")))]
    detail = json.loads(ok(cp.cpctl("services", "get", name, "--json")))
    assert detail["name"] == name
    assert "i-1" in ok(cp.cpctl("services", "get", name))
    found = json.loads(ok(cp.cpctl("discover", name, "--json")))
    assert [i["instance_id"] for i in found] == ["i-1"] and found[0]["url"] == "http://127.0.0.1:9000"
    assert "i-1" in ok(cp.cpctl("discover", name, "--tag", "v2"))
    assert json.loads(ok(cp.cpctl("discover", name, "--tag", "nope", "--json"))) == []
    ok(cp.cpctl("services", "deregister", name, "i-1"))
    missing = cp.cpctl("services", "get", f"{name}-missing")
    assert missing.returncode == 3 and "404" in missing.stderr
    assert cp.cpctl("services", "deregister", name, "i-1").returncode == 3
    usage = cp.cpctl("services", "frobnicate")
    assert usage.returncode == 2
    denied = cp.cpctl("services", "ls", key="nope.not-a-key")
    assert denied.returncode == 1 and "401" in denied.stderr


def test_config_commands(cp: ControlPlane, namespace: str, tmp_path: Path) -> None:
    out = json.loads(ok(cp.cpctl("config", "put", namespace, "db.port", "5432", "--json")))
    assert out["value"] == 5432 and out["revision"] == 1
    ok(cp.cpctl("config", "put", namespace, "db.host", "db.internal"))
    ok(cp.cpctl("config", "put", namespace, "code", "007", "--string"))
    assert json.loads(ok(cp.cpctl("config", "get", namespace, "--json"))) == {
        "db": {"port": 5432, "host": "db.internal"},
        "code": "007",
    }
    assert ok(cp.cpctl("config", "get", namespace, "db.port")).strip() == "5432"
    assert "db.host  db.internal" in ok(cp.cpctl("config", "get", namespace))
    assert cp.cpctl("config", "get", namespace, "nope").returncode == 3
    stale = cp.cpctl("config", "put", namespace, "db.port", "1", "--expected-revision", "0")
    assert stale.returncode == 4 and "412" in stale.stderr
    ok(cp.cpctl("config", "put", namespace, "db.port", "6432", "--expected-revision", "1"))
    assert cp.cpctl("config", "rm", namespace, "code", "--expected-revision", "99").returncode == 4
    ok(cp.cpctl("config", "rm", namespace, "code"))
    exported = ok(cp.cpctl("config", "export", namespace, "--format", "json"))
    assert json.loads(exported) == {"db": {"port": 6432, "host": "db.internal"}}
    document = tmp_path / "doc.yaml"
    document.write_text("db:\n  port: 7000\nnew: 1\n")
    ok(cp.cpctl("config", "import", namespace, str(document)))
    assert json.loads(ok(cp.cpctl("config", "get", namespace, "--json")))["new"] == 1
    replaced = cp.cpctl("config", "import", namespace, "-", "--format", "json", "--replace", input='{"only": true}')
    ok(replaced)
    assert json.loads(ok(cp.cpctl("config", "get", namespace, "--json"))) == {"only": True}
    history = json.loads(ok(cp.cpctl("config", "history", namespace, "--json")))
    assert history[0]["number"] > history[-1]["number"] == 1
    assert "NUMBER" in ok(cp.cpctl("config", "history", namespace))
    ok(cp.cpctl("config", "rollback", namespace, "2"))
    assert json.loads(ok(cp.cpctl("config", "get", namespace, "--json"))) == {
        "db": {"port": 5432, "host": "db.internal"}
    }


def test_config_watch_prints_each_change_of_the_key(cp: ControlPlane, namespace: str) -> None:
    with cp.client() as c:
        c.config_put(namespace, "a", 1)
        watch = subprocess.Popen(
            [CPCTL, "config", "watch", namespace, "a", "--json", "--wait", "5s"],
            env=cp.cli_env(),
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert watch.stdout is not None
            assert json.loads(watch.stdout.readline())["value"] == 1
            c.config_put(namespace, "b", 1)  # another key: nothing printed
            c.config_put(namespace, "a", 2)
            line = json.loads(watch.stdout.readline())
            assert line == {"revision": 3, "value": 2}
        finally:
            watch.terminate()
            watch.wait(timeout=10)


def test_pipelines_keys_and_events(cp: ControlPlane, name: str, tmp_path: Path) -> None:
    with cp.client() as c:
        c.pipeline_create(
            {
                "slug": name,
                "name": name,
                "steps": [
                    {
                        "name": "total",
                        "kind": "transform",
                        "priority": 10,
                        "config": {
                            "operations": [
                                {"op": "set", "path": "payload.total", "expr": "payload.price * payload.qty"}
                            ]
                        },
                    }
                ],
            }
        )
    payload = tmp_path / "packet.json"
    payload.write_text('{"price": 3, "qty": 2}')
    result = json.loads(ok(cp.cpctl("pipelines", "run", name, "--payload", f"@{payload}", "--json")))
    assert result["status"] == "succeeded" and result["packet"]["payload"]["total"] == 6
    assert "succeeded" in ok(cp.cpctl("pipelines", "run", name, "--payload", '{"price": 1, "qty": 1}'))
    run = json.loads(ok(cp.cpctl("pipelines", "run", name, "--payload", f"@{payload}", "--async", "--json")))
    assert run["status"] == "succeeded" and run["output"]["payload"]["total"] == 6
    dry = json.loads(
        ok(cp.cpctl("pipelines", "run", name, "--payload", '{"price": 1, "qty": 1}', "--dry-run", "--json"))
    )
    assert dry["status"] == "succeeded"
    assert name in ok(cp.cpctl("pipelines", "ls"))

    created = ok(cp.cpctl("keys", "create", f"{name}-k", "--scope", "registry:read", "--rate", "100/m"))
    key = created.strip().splitlines()[-1]
    prefix = key.split(".")[0]
    assert ok(cp.cpctl("services", "ls", key=key))
    assert prefix in ok(cp.cpctl("keys", "ls"))
    revoked = json.loads(ok(cp.cpctl("keys", "revoke", prefix, "--json")))
    assert revoked["prefix"] == prefix and revoked["revoked"]
    assert cp.cpctl("services", "ls", key=key).returncode == 1

    tail = subprocess.Popen(
        [CPCTL, "events", "tail", "--kind", "service.*", "--json", "--interval", "200ms"],
        env=cp.cli_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.5)  # the first batch (recent history) is printed; then it follows
        with cp.client() as c:
            c.service_create(f"{name}-tail")
        assert tail.stdout is not None
        deadline = time.monotonic() + 15
        seen = []
        while time.monotonic() < deadline:
            event = json.loads(tail.stdout.readline())
            seen.append(event)
            if event["subject"] == f"{name}-tail":
                break
        assert seen[-1]["kind"] == "service.created" and seen[-1]["subject"] == f"{name}-tail"
        assert [e["id"] for e in seen] == sorted(e["id"] for e in seen)  # oldest first
    finally:
        tail.terminate()
        tail.wait(timeout=10)
    once = ok(cp.cpctl("events", "tail", "--no-follow", "--kind", "service.*"))
    assert f"{name}-tail" in once


CHILD = textwrap.dedent("""
    import os, signal, sys, time
    out, code = sys.argv[1], int(sys.argv[2])
    def log(text):
        with open(out, "a") as handle:
            handle.write(text + "\\n")
    def on_term(signum, frame):
        log(f"term {os.getpid()}")
        sys.exit(code)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, lambda s, f: log(f"hup {os.getpid()}"))
    if os.environ.get("IGNORE_TERM") == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    log(f"start {os.getpid()} port={os.environ.get('APP_DB_PORT')} host={os.environ.get('APP_DB_HOST')}")
    while True:
        time.sleep(0.05)
""")


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _exec(cp: ControlPlane, namespace: str, out: Path, *extra: str, code: int = 7, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            CPCTL,
            "exec",
            "--namespace",
            namespace,
            "--prefix",
            "APP_",
            "--wait",
            "100ms:500ms",
            *extra,
            "--",
            sys.executable,
            "-c",
            CHILD,
            str(out),
            str(code),
        ],
        env=cp.cli_env(**env),
        stderr=subprocess.PIPE,
        text=True,
    )


def test_exec_restarts_its_child_within_two_seconds_and_passes_sigterm(
    cp: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    out = tmp_path / "child.log"
    with cp.client() as c:
        c.config_put(namespace, "db.port", 5432)
        c.config_put(namespace, "db.host", "a")
        supervisor = _exec(cp, namespace, out)
        try:
            assert wait_until(lambda: _lines(out), 15), supervisor.stderr
            first = _lines(out)[0].split()
            assert first[0] == "start" and first[2:] == ["port=5432", "host=a"]
            time.sleep(0.5)  # the watch is in place
            changed = time.monotonic()
            c.config_put(namespace, "db.port", 6432)
            assert wait_until(lambda: len(_lines(out)) >= 3, 5), _lines(out)
            elapsed = time.monotonic() - changed
            stopped, started = _lines(out)[1].split(), _lines(out)[2].split()
            assert stopped == ["term", first[1]] and started[0] == "start" and started[2] == "port=6432"
            assert started[1] != first[1] and elapsed < 2.0, elapsed
            supervisor.send_signal(signal.SIGTERM)
            assert supervisor.wait(timeout=15) == 7  # the child's own exit code, after it got SIGTERM
            assert _lines(out)[-1] == f"term {started[1]}"
        finally:
            if supervisor.poll() is None:
                supervisor.kill()


def test_exec_signal_mode_grace_kill_and_the_childs_own_exit(cp: ControlPlane, namespace: str, tmp_path: Path) -> None:
    with cp.client() as c:
        c.config_put(namespace, "db.port", 1)
        out = tmp_path / "hup.log"
        supervisor = _exec(cp, namespace, out, "--signal", "HUP")
        try:
            assert wait_until(lambda: _lines(out), 15)
            pid = _lines(out)[0].split()[1]
            time.sleep(0.5)
            c.config_put(namespace, "db.port", 2)
            assert wait_until(lambda: f"hup {pid}" in _lines(out), 5), _lines(out)
            assert [line for line in _lines(out) if line.startswith("start")] == [_lines(out)[0]]  # not restarted
            os.kill(int(pid), signal.SIGTERM)  # the child ends on its own: cpctl ends with its code
            assert supervisor.wait(timeout=10) == 7
        finally:
            if supervisor.poll() is None:
                supervisor.kill()

        out = tmp_path / "stubborn.log"
        supervisor = _exec(cp, namespace, out, "--grace", "1s", IGNORE_TERM="1")
        try:
            assert wait_until(lambda: _lines(out), 15)
            pid = int(_lines(out)[0].split()[1])
            time.sleep(0.5)
            c.config_put(namespace, "db.port", 3)
            # SIGTERM ignored: SIGKILL after the 1 s grace, then the new child with the new value.
            assert wait_until(lambda: any("port=3" in line for line in _lines(out)), 6), _lines(out)
            assert not os.path.exists(f"/proc/{pid}") or "Z" in Path(f"/proc/{pid}/stat").read_text().split(") ")[1][:1]
        finally:
            supervisor.send_signal(signal.SIGTERM)
            supervisor.wait(timeout=15)


def test_exec_settles_a_burst_into_one_restart_after_its_splay(
    cp: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    with cp.client() as c:
        c.config_put(namespace, "db.port", 1)
        out = tmp_path / "burst.log"
        # The later --wait wins over _exec's: 1 s of quiet after the last change (at most 5 s), then up to 300 ms splay.
        supervisor = _exec(cp, namespace, out, "--wait", "1s:5s", "--splay", "300ms")
        try:
            assert wait_until(lambda: _lines(out), 15), supervisor.stderr
            time.sleep(0.5)
            for port in (2, 3, 4):  # a burst well inside the settle time
                c.config_put(namespace, "db.port", port)
            assert wait_until(lambda: any("port=4" in line for line in _lines(out)), 10), _lines(out)
            time.sleep(1.5)  # a second restart would come within the settle time + splay
            starts = [line.split()[2] for line in _lines(out) if line.startswith("start")]
            assert starts == ["port=1", "port=4"]
        finally:
            supervisor.send_signal(signal.SIGTERM)
            supervisor.wait(timeout=15)


def test_render_writes_once_per_real_change(cp: ControlPlane, namespace: str, tmp_path: Path) -> None:
    template = tmp_path / "app.conf.j2"
    template.write_text("upstream db { server {{ config.db.host }}:{{ config.db.port }}; }\n")
    out = tmp_path / "app.conf"
    reloads = tmp_path / "reloads"
    command = f"{sys.executable} -c \"open('{reloads}', 'a').write('x')\""
    with cp.client() as c:
        c.config_put(namespace, "db.port", 5432)
        c.config_put(namespace, "db.host", "db1")
        ok(cp.cpctl("render", str(template), str(out), "-n", namespace, "--once"))
        assert out.read_text() == "upstream db { server db1:5432; }\n"
        assert oct(out.stat().st_mode & 0o777) == "0o600"
        out.unlink()
        render = subprocess.Popen(
            [CPCTL, "render", str(template), str(out), "-n", namespace, "--wait", "1s:4s", "--exec", command],
            env=cp.cli_env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert wait_until(lambda: reloads.exists() and reloads.read_text() == "x", 15)
            inode = out.stat().st_ino
            time.sleep(0.5)
            c.config_put(namespace, "unused", 1)  # not in the template: nothing written, nothing run
            c.config_put(namespace, "db.port", 5432)  # the same value
            time.sleep(2.5)  # past the 1 s settle time: a write would have happened by now
            assert reloads.read_text() == "x" and out.stat().st_ino == inode
            # A burst within the settle time (1 s of quiet: three PUTs take far less, even on a loaded
            # machine, where 200 ms between two of them once split the burst in two writes): one write.
            for port in (6000, 6001, 6002):
                c.config_put(namespace, "db.port", port)
            assert wait_until(lambda: reloads.read_text() == "xx", 8)
            time.sleep(2.5)
            assert reloads.read_text() == "xx" and out.read_text() == "upstream db { server db1:6002; }\n"
            assert out.stat().st_ino != inode  # replaced by rename, never rewritten in place
            assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".app.conf")] == []
        finally:
            render.terminate()
            render.wait(timeout=10)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["pipelines", "run", "p", "--payload", "@/nonexistent/payload.json"], "--payload"),
        (["pipelines", "run", "p", "--payload", "{not json"], "--payload"),
        (["pipelines", "run", "p", "--payload", "{}", "--metadata", "nope"], "--metadata"),
        (["services", "register", "s", "i-1", "127.0.0.1", "80", "--check", "{x"], "--check"),
        (["config", "put", "ns", "k", "@/nonexistent/value"], "VALUE"),
        (["config", "import", "ns", "/nonexistent/doc.yaml"], "DOCUMENT"),
    ],
)
def test_unreadable_or_malformed_input_is_a_usage_error_not_a_traceback(
    cp: ControlPlane, args: list[str], named: str
) -> None:
    result = cp.cpctl(*args)
    assert result.returncode == 2 and named in result.stderr and "Traceback" not in result.stderr, result.stderr
