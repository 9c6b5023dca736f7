"""Watches through a real uvicorn process: immediate answers, wake-ups on change, timeouts, auth and limits."""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings

from configstore import services
from controlplane import commandlines
from tests.conftest import key_client, subprocess_env

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _uvicorn(app: str, tmp_path):  # type: ignore[no-untyped-def]
    """A uvicorn process on an ephemeral port serving `app` against the test database; yields the port."""
    log_path = tmp_path / "uvicorn.log"
    log = open(log_path, "w")  # noqa: SIM115
    process = subprocess.Popen(
        commandlines.uvicorn("127.0.0.1", 0, app=app),  # serve's command line, on an ephemeral port
        env=subprocess_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    port = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and port is None:
        if process.poll() is not None:
            raise RuntimeError(log_path.read_text()[-2000:])
        match = re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", log_path.read_text())
        port = int(match.group(1)) if match else None
        time.sleep(0.1)
    if port is None:
        process.kill()
        raise RuntimeError(f"uvicorn did not start: {log_path.read_text()[-2000:]}")
    try:
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture
def watch_server(transactional_db, tmp_path):  # type: ignore[no-untyped-def]
    """The project's ASGI entry as deployed (watch path native, every other route by Django)."""
    yield from _uvicorn("controlplane.asgi:application", tmp_path)


def get(port: int, path: str, key: str | None, timeout: float = 30) -> tuple[int, dict, bytes, float]:
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    connection.request("GET", path, headers={"Authorization": f"Api-Key {key}"} if key else {})
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body, time.monotonic() - started


@pytest.fixture
def reader(transactional_db):  # type: ignore[no-untyped-def]
    return key_client("config:read").raw_key


def test_answers_at_once_when_the_index_is_behind(watch_server, reader):
    namespace = services.namespace_create(name="watched", actor="t")
    services.config_entry_set(namespace=namespace, key="a", value=1, actor="t")
    status, headers, body, elapsed = get(watch_server, "/api/v1/config/watched/watch/?index=0&wait=10s", reader)
    assert status == 200 and headers["x-config-index"] == "1" and json.loads(body) == {"a": 1}
    assert elapsed < 2
    assert "x-request-id" in headers and "ratelimit-limit" in headers
    # The same server also serves every other route (embedded mode: one port, no proxy).
    status, headers, body, _ = get(watch_server, "/api/v1/config/watched/", reader)
    assert status == 200 and json.loads(body) == {"a": 1} and headers["etag"] == '"1"'


def test_the_wsgi_route_answers_without_blocking(reader):
    from rest_framework.test import APIClient

    namespace = services.namespace_create(name="watched", actor="t")
    services.config_entry_set(namespace=namespace, key="a", value=1, actor="t")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {reader}")
    response = client.get("/api/v1/config/watched/watch/?index=0")
    assert response.status_code == 200 and response["X-Config-Index"] == "1" and response.json() == {"a": 1}
    blocked = client.get("/api/v1/config/watched/watch/?index=1&wait=5s")
    assert blocked.status_code == 503 and "watch server" in blocked.json()["detail"]
    assert client.get("/api/v1/config/watched/watch/?index=1&wait=0s").status_code == 200


def test_a_watcher_wakes_on_change_and_times_out_otherwise(watch_server, reader):
    namespace = services.namespace_create(name="watched", actor="t")
    services.config_entry_set(namespace=namespace, key="a", value=1, actor="t")
    status, headers, body, elapsed = get(watch_server, "/api/v1/config/watched/watch/?index=1&wait=1s", reader)
    assert status == 200 and headers["x-config-index"] == "1" and 0.9 <= elapsed < 3
    with ThreadPoolExecutor(max_workers=3) as pool:
        waiting = [
            pool.submit(get, watch_server, "/api/v1/config/watched/watch/?index=1&wait=20s", reader) for _ in range(3)
        ]
        time.sleep(0.5)
        assert not any(f.done() for f in waiting)
        changed_at = time.monotonic()
        services.config_entry_set(namespace=namespace, key="a", value=2, actor="t")
        for future in waiting:
            status, headers, body, _ = future.result(timeout=10)
            assert status == 200 and headers["x-config-index"] == "2" and json.loads(body) == {"a": 2}
        assert time.monotonic() - changed_at < 3


def test_watch_auth_scopes_namespace_limits_and_bad_input(watch_server, reader):
    services.namespace_create(name="watched", actor="t")
    services.namespace_create(name="hidden", actor="t")
    assert get(watch_server, "/api/v1/config/watched/watch/?index=0", None)[0] == 401
    assert get(watch_server, "/api/v1/config/watched/watch/?index=0", "bogus.key")[0] == 401
    assert get(watch_server, "/api/v1/config/watched/watch/?index=0", key_client("registry:read").raw_key)[0] == 403
    limited = key_client("config:read", namespaces=["watched"]).raw_key
    status, headers, body, _ = get(watch_server, "/api/v1/config/hidden/watch/?index=0", limited)
    assert status == 404 and headers["content-type"] == "application/problem+json"
    assert get(watch_server, "/api/v1/config/nope/watch/?index=0", reader)[0] == 404
    status, _, body, _ = get(watch_server, "/api/v1/config/watched/watch/?index=x&wait=forever", reader)
    assert status == 400 and set(json.loads(body)["errors"]) == {"index", "wait"}
    slow = key_client("config:read", rate="2/m").raw_key
    assert [get(watch_server, "/api/v1/config/watched/watch/?index=0&wait=0s", slow)[0] for _ in range(3)] == [
        200,
        200,
        429,
    ]


def test_secrets_are_masked_in_watch_answers_without_the_scope(watch_server, reader):
    namespace = services.namespace_create(name="watched", actor="t")
    services.config_entry_set(namespace=namespace, key="pw", value="hunter2", secret=True, actor="t")
    assert json.loads(get(watch_server, "/api/v1/config/watched/watch/?index=0", reader)[2]) == {"pw": "********"}
    revealing = key_client("config:read", "config:secrets").raw_key
    assert json.loads(get(watch_server, "/api/v1/config/watched/watch/?index=0", revealing)[2]) == {"pw": "hunter2"}


def test_a_deleted_namespace_ends_its_watches_and_a_recreated_one_starts_over(watch_server, reader):
    namespace = services.namespace_create(name="watched", actor="t")
    for value in range(3):
        services.config_entry_set(namespace=namespace, key="a", value=value, actor="t")
    assert get(watch_server, "/api/v1/config/watched/watch/?index=0", reader)[1]["x-config-index"] == "3"
    with ThreadPoolExecutor(max_workers=1) as pool:
        waiting = pool.submit(get, watch_server, "/api/v1/config/watched/watch/?index=3&wait=20s", reader)
        time.sleep(0.5)
        services.namespace_delete(namespace=namespace, actor="t")
        assert waiting.result(timeout=10)[0] == 404
    again = services.namespace_create(name="watched", actor="t")
    services.config_entry_set(namespace=again, key="b", value=1, actor="t")
    # Revision 1 of the new namespace is not mistaken for something older than the old revision 3.
    status, headers, body, elapsed = get(watch_server, "/api/v1/config/watched/watch/?index=1&wait=1s", reader)
    assert status == 200 and headers["x-config-index"] == "1" and json.loads(body) == {"b": 1} and elapsed >= 0.9


SECURITY_HEADERS = ("x-content-type-options", "referrer-policy", "cross-origin-opener-policy", "x-frame-options")


def _raw(port: int, path: str, headers: dict[str, str], method: str = "GET") -> tuple[int, dict, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request(method, path, headers=headers)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def test_watch_answers_go_through_the_common_middleware(watch_server, reader):
    """Request id, Server-Timing, security headers and RateLimit-* as on every other route (issue #10)."""
    namespace = services.namespace_create(name="watched", actor="t")
    services.config_entry_set(namespace=namespace, key="a", value=1, actor="t")
    auth = {"Authorization": f"Api-Key {reader}"}
    _, plain, _ = _raw(watch_server, "/api/v1/config/watched/", auth)  # Django's own chain, same server
    for path in ("/api/v1/config/watched/watch/?index=0", "/api/v1/config/watched/watch/?index=1&wait=1s"):
        status, headers, _ = _raw(watch_server, path, {**auth, "X-Request-ID": "trace-me-123"})
        assert status == 200
        assert headers["x-request-id"] == "trace-me-123"
        assert re.fullmatch(r"app;dur=\d+\.\d\d", headers["server-timing"])
        for name in SECURITY_HEADERS:
            assert headers.get(name) == plain[name], name
        assert headers["ratelimit-limit"] == plain["ratelimit-limit"]
    # The timed-out watch's Server-Timing covers its wait: the tracing middleware wraps the whole view.
    _, headers, _ = _raw(watch_server, "/api/v1/config/watched/watch/?index=1&wait=1s", auth)
    assert float(headers["server-timing"].split("=")[1]) >= 900
    # A request id that is not sane is replaced, as elsewhere.
    _, headers, _ = _raw(watch_server, "/api/v1/config/watched/watch/?index=0", {**auth, "X-Request-ID": "x" * 500})
    assert headers["x-request-id"] != "x" * 500 and len(headers["x-request-id"]) <= 64


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("GET", "/api/v1/config/watched/watch/?index=0", {}, 401),
        ("GET", "/api/v1/config/watched/watch/?index=0", {"key": "config:write"}, 403),
        ("GET", "/api/v1/config/nope/watch/?index=0", {"key": "config:read"}, 404),
        ("POST", "/api/v1/config/watched/watch/?index=0", {"key": "config:read"}, 405),
        ("GET", "/api/v1/config/watched/watch/?index=0&x=%00", {"key": "config:read"}, 400),
        ("GET", "/api/v1/config/watched/watch/?index=0", {"key": "config:read", "Host": "evil.example"}, 400),
        ("GET", "/api/v1/config/watched/watch/?index=-1", {"key": "config:read"}, 400),
    ],
    ids=["no-key", "wrong-scope", "unknown-namespace", "method", "nul-in-query", "disallowed-host", "bad-index"],
)
def test_watch_refusals_are_problem_json_with_the_common_headers(watch_server, method, path, headers, status):
    if "Host" in headers and "*" in settings.ALLOWED_HOSTS:
        pytest.skip("this pass allows every host (ALLOWED_HOSTS='*')")
    services.namespace_create(name="watched", actor="t")
    sent = {name: value for name, value in headers.items() if name != "key"}
    if "key" in headers:
        sent["Authorization"] = f"Api-Key {key_client(headers['key']).raw_key}"
    got, answer, body = _raw(watch_server, path, sent, method)
    assert got == status
    assert answer["content-type"] == "application/problem+json"
    problem = json.loads(body)
    assert problem["status"] == status and problem["request_id"] == answer["x-request-id"]
    assert "server-timing" in answer and answer["x-content-type-options"] == "nosniff"
    if method == "GET" and "index=-1" not in path:
        # The same refusal on a plain route of the same server carries the same headers (one chain).
        plain_status, plain, _ = _raw(watch_server, path.replace("/watch/", "/"), sent, method)
        assert plain_status == status
        common = ("x-request-id", "server-timing", *SECURITY_HEADERS)
        assert {name: name in answer for name in common} == {name: name in plain for name in common}
