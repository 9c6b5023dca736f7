"""The SDK's own rules, without a control plane: error mapping, retry decisions and budget (against a real
local HTTP server that counts requests), balancer strategies, the Config mapping, watch state, debounce,
the outage cache's files, and cpctl's environment naming."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from controlplane_client import Client, ConnectionFailed, ServerError
from controlplane_client import errors as e
from controlplane_client.balancer import STRATEGIES, Balancer, NoInstances
from controlplane_client.cache import OutageCache
from controlplane_client.cli.follow import config_env, env_name, env_value, wait_range
from controlplane_client.config import Config, Debouncer, WatchState, changed_keys, matches, relevant
from controlplane_client.models import Discovery, Instance
from controlplane_client.transport import RetryBudget, RetryPolicy

PROBLEM = {
    "type": "https://controlplane.dev/problems/x",
    "title": "T",
    "detail": "D",
    "request_id": "rid",
    "errors": {"port": ["bad"]},
}


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, e.ValidationError),
        (401, e.Unauthorized),
        (403, e.Forbidden),
        (404, e.NotFound),
        (409, e.Conflict),
        (412, e.PreconditionFailed),
        (429, e.RateLimited),
        (503, e.Unavailable),
        (500, e.ServerError),
        (502, e.ServerError),
        (418, e.ControlPlaneError),
    ],
)
def test_problem_answers_become_typed_errors(status: int, cls: type) -> None:
    response = httpx.Response(
        status, json=PROBLEM, headers={"Retry-After": "7"}, request=httpx.Request("GET", "http://x/")
    )
    error = e.error_from_response(response)
    assert type(error) is cls
    assert (error.status, error.title, error.detail, error.request_id, error.errors) == (
        status,
        "T",
        "D",
        "rid",
        {"port": ["bad"]},
    )
    if cls in (e.RateLimited, e.Unavailable, e.ServerError):
        assert error.retry_after == 7.0  # type: ignore[attr-defined]
    assert "rid" in str(error) and "D" in str(error)


def test_non_json_error_keeps_status_and_text() -> None:
    response = httpx.Response(502, text="<html>bad gateway</html>", request=httpx.Request("GET", "http://x/"))
    error = e.error_from_response(response)
    assert isinstance(error, ServerError) and error.status == 502 and "bad gateway" in error.detail


class Counting(ThreadingHTTPServer):
    """Answers every request with `status` (+ Retry-After) and counts them per method."""

    def __init__(self, status: int = 503, retry_after: str | None = "0") -> None:
        self.counts: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                server.counts[self.command] = server.counts.get(self.command, 0) + 1
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.dumps({"title": "Service Unavailable", "status": status, "detail": "down"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/problem+json")
                if retry_after is not None:
                    self.send_header("Retry-After", retry_after)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = _answer  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> Counting:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


def test_idempotent_calls_are_retried_and_non_idempotent_ones_are_not(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with Counting() as server, Client(server.url, "k.x", retries=3, cache_dir=False) as client:
        with pytest.raises(e.Unavailable):
            client.service("a")  # GET
        with pytest.raises(e.Unavailable):
            client.config_put("ns", "a", 1, expected_revision=3)  # CAS PUT: cannot apply twice
        with pytest.raises(e.Unavailable):
            client.run("p", {})  # POST run: may have run, never repeated
        with pytest.raises(e.Unavailable):
            client.config_rollback("ns", 1)
    assert server.counts == {"GET": 4, "PUT": 4, "POST": 2}


def test_a_long_retry_after_is_returned_not_slept_through() -> None:
    with Counting(retry_after="3600") as server, Client(server.url, "k.x", cache_dir=False) as client:
        with pytest.raises(e.Unavailable) as info:
            client.service("a")
    assert info.value.retry_after == 3600 and server.counts == {"GET": 1}


def test_rate_limited_calls_wait_retry_after_even_for_posts() -> None:
    with Counting(status=429, retry_after="0") as server, Client(server.url, "k.x", retries=2, cache_dir=False) as c:
        with pytest.raises(e.RateLimited):
            c.run("p", {})  # a 429 was refused before running: safe to repeat
    assert server.counts == {"POST": 3}


def test_retry_budget_caps_retries_across_calls_in_an_outage() -> None:
    budget = RetryBudget(capacity=3, ratio=0.1)
    with Counting() as server, Client(server.url, "k.x", retries=5, cache_dir=False, retry_budget=budget) as client:
        for _ in range(10):
            with pytest.raises(e.Unavailable):
                client.service("a")
    # 10 first attempts + only the 3 retries the budget held (no successes refilled it), not 10 x 5.
    assert server.counts == {"GET": 13}
    budget.success()
    assert budget.tokens == pytest.approx(0.1)


def test_connection_refused_is_connection_failed_and_retried_within_budget() -> None:
    client = Client("http://127.0.0.1:9", "k.x", retries=2, cache_dir=False)
    with pytest.raises(ConnectionFailed) as info:
        client.run("p", {})  # never sent: retried even though a run is not idempotent
    assert info.value.status == 0
    assert client.budget.tokens == pytest.approx(client.budget.capacity - 2)


def _instances(*ids: str) -> Discovery:
    return Discovery("svc", [Instance(instance_id=i, address="127.0.0.1", port=1) for i in ids])


def test_balancer_strategies() -> None:
    balancer = Balancer(None, "svc", strategy="round_robin")  # type: ignore[arg-type]
    with pytest.raises(NoInstances):
        balancer.pick()
    balancer._update(_instances("a", "b", "c"))
    assert [balancer.pick().instance_id for _ in range(6)] == ["a", "b", "c", "a", "b", "c"]

    lrf = Balancer(None, "svc", strategy="least_recently_failed")  # type: ignore[arg-type]
    lrf._update(_instances("a", "b", "c"))
    lrf.report_failure("a")
    lrf.report_failure("b")
    assert {lrf.pick().instance_id for _ in range(5)} == {"c"}
    lrf.report_failure("c")  # everyone failed: the one that failed longest ago
    assert lrf.pick().instance_id == "a"
    lrf.report_success("b")
    assert lrf.pick().instance_id == "b"
    lrf._update(_instances("b", "c"))  # a left: its failure is forgotten
    assert "a" not in lrf.failed

    rnd = Balancer(None, "svc", strategy="random")  # type: ignore[arg-type]
    rnd._update(_instances("a", "b"))
    assert {rnd.pick().instance_id for _ in range(200)} == {"a", "b"}
    assert set(STRATEGIES) == {"round_robin", "random", "least_recently_failed"}
    with pytest.raises(ValueError):
        Balancer(None, "svc", strategy="nope")  # type: ignore[arg-type]


def test_config_is_a_read_only_mapping_with_typed_getters() -> None:
    cfg = Config("ns", {"db": {"port": 5432, "host": "h", "tls": "yes"}, "n": "12", "flag": False, "list": [1]}, 3)
    assert cfg["db.port"] == 5432 and cfg["db"]["host"] == "h" and "db.port" in cfg and "db.nope" not in cfg
    assert set(cfg) == {"db", "n", "flag", "list"} and len(cfg) == 4 and cfg.revision == 3 and not cfg.stale
    with pytest.raises(TypeError):
        cfg["db"]["port"] = 1  # type: ignore[index]
    with pytest.raises(KeyError):
        cfg["db.port.x"]
    assert cfg.get_int("n") == 12 and cfg.get_int("db.host", 7) == 7 and cfg.get_int("missing", 1) == 1
    assert cfg.get_bool("db.tls") is True and cfg.get_bool("flag") is False and cfg.get_bool("n", None) is None
    assert cfg.get_str("db.port") == "5432" and cfg.get_str("missing", "d") == "d"
    assert cfg.flat() == {"db.port": 5432, "db.host": "h", "db.tls": "yes", "n": "12", "flag": False, "list": [1]}
    copy = cfg.to_dict()
    copy["db"]["port"] = 1
    assert cfg["db.port"] == 5432
    assert changed_keys({"db": {"port": 1, "x": 2}}, {"db": {"port": 2}, "y": 1}) == {"db.port", "db.x", "y"}
    assert matches(["db"], {"db.port"}) and matches(["db.port"], {"db.port"}) and not matches(["db.host"], {"db.port"})
    assert matches(None, {"x"}) and not matches(None, set())
    # One answer can carry several writes: a watcher of `a` hears of `a` only.
    assert relevant(["a"], {"a", "other"}) == {"a"} and relevant(["db"], {"db.port", "x"}) == {"db.port"}
    assert relevant(None, {"x", "y"}) == {"x", "y"}


def test_watch_state_index_rules_and_backoff() -> None:
    state = WatchState(5, wait=30)
    assert 24 <= state.request_wait() <= 30
    assert state.answered(5) is False  # wait ran out
    assert state.answered(7) is True and state.index == 7
    assert state.answered(2) is True and state.index == 2  # went backwards: the new state, not a wait past 7
    delays = [state.failed(e.ConnectionFailed("x")) for _ in range(12)]
    assert max(delays) <= 30 and state.errors == 12
    assert state.failed(e.RateLimited("x", retry_after=4)) >= 4
    state.answered(3)
    assert state.errors == 0


def test_debouncer_settles_and_caps() -> None:
    d = Debouncer(1.0, 3.0)
    assert not d.due(0)
    d.add(0)
    assert not d.due(0.5) and d.due(1.0)
    d.add(0.9)
    d.add(1.8)
    d.add(2.7)
    assert not d.due(2.9) and d.due(3.0)  # changes keep coming: delivered at max after the first


def test_outage_cache_files_are_private_atomic_and_per_key(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cache = OutageCache(tmp_path / "c", "http://a", "AAAA.secret1")
    cache.save("config", "payments", {"psp": {"key": "sk"}}, index=4)
    path = cache.path("config", "payments")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for directory in (tmp_path / "c", cache.dir, path.parent):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["payments.json"]  # no temporary file left
    data, index, age = cache.load("config", "payments")  # type: ignore[misc]
    assert data == {"psp": {"key": "sk"}} and index == 4 and 0 <= age < 5
    assert OutageCache(tmp_path / "c", "http://a", "AAAA.secret2").load("config", "payments") is None
    assert OutageCache(tmp_path / "c", "http://b", "AAAA.secret1").load("config", "payments") is None
    path.write_text("{trunc")
    assert cache.load("config", "payments") is None
    cache.drop("config", "payments")
    assert not path.exists()


def test_outage_cache_creates_a_missing_user_cache_directory(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # A fresh account has no ~/.cache yet: the first save must create it, not fail silently.
    cache = OutageCache(tmp_path / "home" / ".cache" / "controlplane-client", "http://a", "k.x")
    cache.save("discovery", "web", [{"instance_id": "i-1"}], index=2)
    assert cache.load("discovery", "web")[:2] == ([{"instance_id": "i-1"}], 2)  # type: ignore[index]
    assert stat.S_IMODE((tmp_path / "home" / ".cache" / "controlplane-client").stat().st_mode) == 0o700


def test_exec_environment_names_and_values() -> None:
    assert env_name("PAYMENTS_", "db.port") == "PAYMENTS_DB_PORT" and env_name("", "a-b.c") == "A_B_C"
    assert [env_value(v) for v in ("x", 1, 1.5, True, None, [1, "a"], {"a": 1})] == [
        "x",
        "1",
        "1.5",
        "true",
        "",
        '[1,"a"]',
        '{"a":1}',
    ]
    cfg = Config("ns", {"db": {"port": 1}, "on": True}, 1)
    assert config_env(cfg, "P_") == {"P_DB_PORT": "1", "P_ON": "true"}
    assert wait_range("1s:5s") == (1.0, 5.0) and wait_range("500ms") == (0.5, 2.0)


def test_outage_cache_confirms_unchanged_answers_without_rewriting(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os

    cache = OutageCache(tmp_path, "http://a", "k.x")
    cache.save("config", "ns", {"a": 1}, index=2)
    path = cache.path("config", "ns")
    inode = path.stat().st_ino
    stored = json.loads(path.read_text())
    path.write_text(json.dumps({**stored, "saved_at": stored["saved_at"] - 100}))  # in place: same inode
    os.utime(path, (stored["saved_at"] - 100, stored["saved_at"] - 100))
    assert cache.load("config", "ns")[2] >= 99  # type: ignore[index]
    cache.save("config", "ns", {"a": 1}, index=2)  # within a second of the write: nothing at all
    assert cache.load("config", "ns")[2] >= 99  # type: ignore[index]
    cache._confirmed.clear()  # as if more than a second had passed
    cache.save("config", "ns", {"a": 1}, index=2)  # the same answer again: confirmed, not rewritten
    assert path.stat().st_ino == inode and cache.load("config", "ns")[2] < 5  # type: ignore[index]
    cache.save("config", "ns", {"a": 2}, index=3)
    assert path.stat().st_ino != inode and cache.load("config", "ns")[:2] == ({"a": 2}, 3)  # type: ignore[index]


def test_outage_cache_max_age_refuses_older_copies(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os

    OutageCache(tmp_path, "http://a", "k.x").save("config", "ns", {"a": 1}, index=1)
    capped = OutageCache(tmp_path, "http://a", "k.x", max_age=60)
    assert capped.load("config", "ns") is not None
    path = capped.path("config", "ns")
    stored = json.loads(path.read_text())
    path.write_text(json.dumps({**stored, "saved_at": stored["saved_at"] - 120}))
    os.utime(path, (stored["saved_at"] - 120, stored["saved_at"] - 120))
    assert capped.load("config", "ns") is None
    assert OutageCache(tmp_path, "http://a", "k.x").load("config", "ns") is not None  # no cap: any age
    assert Client("http://a", "k.x", cache_dir=tmp_path, max_stale=60).cache.load("config", "ns") is None


def test_backoff_is_exponential_with_full_jitter_and_retry_after_as_a_floor() -> None:
    policy = RetryPolicy(retries=5, backoff=0.2, max_backoff=1.0)
    down = e.Unavailable("down")
    for attempt, ceiling in [(0, 0.2), (1, 0.4), (2, 0.8), (3, 1.0), (6, 1.0)]:
        delays = [policy.delay(attempt, down) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays) and len(set(delays)) > 100  # spread, not one instant
    advised = [policy.delay(0, e.RateLimited("x", retry_after=3)) for _ in range(50)]
    assert all(3 <= d <= 3.35 for d in advised) and len(set(advised)) > 1


def test_the_package_imports_nothing_of_the_server_and_ships_its_types() -> None:
    import controlplane_client

    code = (
        "import sys, controlplane_client, controlplane_client.cli.main, controlplane_client.cli.supervise, "
        "controlplane_client.cli.render\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'django', 'rest_framework', 'controlplane', "
        "'registry', 'configstore', 'pipelines', 'monitoring'})\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd="/", env={"PATH": os.environ.get("PATH", "")})
    assert (Path(controlplane_client.__file__).parent / "py.typed").exists()
