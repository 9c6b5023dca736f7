"""Answers after a wait are replayed from one recording (`controlplane.watchserver.after_wait`): what a
client gets is what the full middleware chain gives, per-request headers its own, refusals unchanged."""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import pytest
from django.db import connections
from django.test import override_settings

from configstore import services as config
from configstore.notify import TOPIC
from controlplane import watchhub, watchserver
from controlplane.access import keycache
from controlplane.access import services as access
from controlplane.access.models import APIKey
from controlplane.uvicorn_http import WHOLE_RESPONSE
from registry import services as registry
from tests.configstore.test_watch import _uvicorn
from tests.conftest import key_client

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
# Set per request by the middleware (and uvicorn's Date): everything else must match exactly.
PER_REQUEST = {"x-request-id", "server-timing", "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "date"}


@pytest.fixture
def watch_server(transactional_db, tmp_path):  # type: ignore[no-untyped-def]
    yield from _uvicorn("controlplane.asgi:application", tmp_path)


def _get(port: int, path: str, key: str) -> tuple[int, list[tuple[str, str]], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", path, headers={"Authorization": f"Api-Key {key}"})
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, response.getheaders(), body


def _shared(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return sorted((name, value) for name, value in headers if name.lower() not in PER_REQUEST)


def _own(headers: list[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers if name.lower() in PER_REQUEST}


def _waiting(port: int, paths_and_keys: list[tuple[str, str]]):  # type: ignore[no-untyped-def]
    pool = ThreadPoolExecutor(max_workers=len(paths_and_keys))
    futures = [pool.submit(_get, port, path, key) for path, key in paths_and_keys]
    pool.shutdown(wait=False)
    time.sleep(0.8)
    assert not any(future.done() for future in futures), "a blocking query answered before any change"
    return futures


def _assert_same_answer(woken: list, immediate: tuple[int, list, bytes]) -> None:
    status, headers, body = immediate
    assert status == 200
    ids = set()
    for got_status, got_headers, got_body in woken:
        assert got_status == 200 and got_body == body
        assert _shared(got_headers) == _shared(headers)  # names, values, count: as the full chain sends them
        own = _own(got_headers)
        assert re.fullmatch(r"[0-9a-f]{32}", own["x-request-id"])
        assert re.fullmatch(r"app;dur=\d+\.\d\d", own["server-timing"])
        assert own["ratelimit-limit"] == _own(headers)["ratelimit-limit"] and own["ratelimit-remaining"].isdigit()
        ids.add(own["x-request-id"])
    assert len(ids) == len(woken)  # each its own request id


def test_woken_config_watchers_get_the_immediate_answer_with_their_own_request_headers(watch_server) -> None:
    reader = key_client("config:read").raw_key
    namespace = config.namespace_create(name="payments", actor="t")
    config.config_entry_set(namespace=namespace, key="db.port", value=5432, actor="t")
    path = "/api/v1/config/payments/watch/?index={}&wait=20s"
    futures = _waiting(watch_server, [(path.format(1), reader)] * 4)
    config.config_entry_set(namespace=namespace, key="db.port", value=6000, actor="t")
    woken = [future.result(timeout=15) for future in futures]
    immediate = _get(watch_server, path.format(0), reader)
    assert json.loads(immediate[2]) == {"db": {"port": 6000}}
    _assert_same_answer(woken, immediate)


def test_woken_discovery_watchers_get_the_immediate_answer_with_their_own_request_headers(watch_server) -> None:
    reader = key_client("registry:read").raw_key
    service = registry.service_create(name="pay", actor="t")
    for instance_id in ("a", "b"):
        instance, _ = registry.instance_register(
            service=service,
            instance_id=instance_id,
            address="10.0.0.1",
            port=8080,
            checks=[{"name": "alive", "kind": "ttl", "ttl": 60}],
            actor="t",
        )
        registry.check_ttl_update(instance=instance, actor="t")
    status, headers, _ = _get(watch_server, "/api/v1/discover/pay/?index=0", reader)
    index = int(dict((k.lower(), v) for k, v in headers)["x-registry-index"])
    path = f"/api/v1/discover/pay/?index={index}&wait=20s"
    futures = _waiting(watch_server, [(path, reader)] * 3)
    registry.check_ttl_update(instance=service.instances.get(instance_id="a"), status="critical", actor="t")
    woken = [future.result(timeout=15) for future in futures]
    immediate = _get(watch_server, "/api/v1/discover/pay/?index=0", reader)
    assert [item["instance_id"] for item in json.loads(immediate[2])] == ["b"]
    _assert_same_answer(woken, immediate)


def test_keys_revoked_or_narrowed_during_the_wait_are_refused_while_the_others_get_the_answer(watch_server) -> None:
    namespace = config.namespace_create(name="payments", actor="t")
    config.config_entry_set(namespace=namespace, key="a", value=1, actor="t")
    reader = key_client("config:read").raw_key
    narrowed = key_client("config:read", namespaces=["payments"]).raw_key
    revoked = key_client("config:read").raw_key
    path = "/api/v1/config/payments/watch/?index=1&wait=20s"
    futures = _waiting(watch_server, [(path, reader), (path, narrowed), (path, reader), (path, revoked)])
    access.api_key_update(APIKey.objects.get(prefix=narrowed.split(".")[0]), namespaces=["other"])
    access.api_key_revoke(APIKey.objects.get(prefix=revoked.split(".")[0]))
    config.config_entry_set(namespace=namespace, key="a", value=2, actor="t")
    answers = [future.result(timeout=15) for future in futures]
    assert [status for status, _, _ in answers] == [200, 404, 200, 401]
    for status, headers, body in answers[1:4:2]:
        assert dict((k.lower(), v) for k, v in headers)["content-type"] == "application/problem+json"
    assert json.loads(answers[0][2]) == json.loads(answers[2][2]) == {"a": 2}


# In one event loop, through `watchserver.serve` itself: which answers were replayed.


def _scope(path: str, query: str, key: str) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"authorization", f"Api-Key {key}".encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def _serve(
    query: str, key: str, send_whole=None, number: int = 0
) -> tuple[int, dict[bytes, bytes], bytes] | None:  # type: ignore[no-untyped-def]
    """One request through `watchserver.serve`; None when nothing went through `send` (answered by `send_whole`)."""
    messages: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        messages.append(message)

    scope = _scope("/api/v1/config/payments/watch/", query, key)
    scope["watcher"] = number
    if send_whole is not None:
        scope["extensions"] = {WHOLE_RESPONSE: send_whole}
    await watchserver.serve(scope, receive, send)
    if not messages:
        return None
    return messages[0]["status"], dict(messages[0]["headers"]), messages[1]["body"]


def _close_hub_connections() -> None:
    """The hub's threads hold database connections: close them (the test database is dropped later)."""
    pool = watchhub.executor()
    barrier = threading.Barrier(pool._max_workers)  # noqa: SLF001

    def close() -> None:
        barrier.wait(timeout=10)
        connections.close_all()

    for future in [pool.submit(close) for _ in range(pool._max_workers)]:  # noqa: SLF001
        future.result(timeout=20)


def _fan_out(monkeypatch, watchers: int) -> tuple[list, int]:  # type: ignore[no-untyped-def]
    """`watchers` waiting watches woken by one change; returns their answers and how many were replayed."""
    reader = key_client("config:read").raw_key
    namespace = config.namespace_create(name="payments", actor="t")
    config.config_entry_set(namespace=namespace, key="a", value=1, actor="t")
    replayed = []
    send_recorded = watchserver._send_recorded  # noqa: SLF001

    async def spy(request, recorded, send):  # type: ignore[no-untyped-def]
        replayed.append(request)
        await send_recorded(request, recorded, send)

    monkeypatch.setattr(watchserver, "_send_recorded", spy)

    async def scenario() -> list:
        tasks = [asyncio.ensure_future(_serve("index=1&wait=20s", reader)) for _ in range(watchers)]
        hub = watchhub.WatchHub.for_running_loop(TOPIC)
        deadline = time.monotonic() + 15
        while hub.watcher_count() < watchers and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await hub.run_db(partial(config.config_entry_set, namespace=namespace, key="a", value=2, actor="t"))
        answers = await asyncio.wait_for(asyncio.gather(*tasks), 15)
        recorded = len(hub.heads_for("payments"))
        hub.wake("payments", 3, namespace.pk)  # the index moves on: the recording made at 2 is gone
        assert hub.heads_for("payments") == {}
        return answers, recorded

    try:
        answers, recorded = asyncio.run(scenario())
    finally:
        watchhub.WatchHub._instances.pop(TOPIC.name, None)  # noqa: SLF001 - a hub per test loop
        _close_hub_connections()
    assert recorded == (1 if watchserver._replayable else 0)  # noqa: SLF001
    return answers, len(replayed)


def test_every_woken_watcher_but_the_first_is_replayed(monkeypatch) -> None:
    answers, replayed = _fan_out(monkeypatch, 5)
    assert replayed == 4
    assert {(status, body) for status, _, body in answers} == {(200, b'{"a":2}')}
    assert len({headers[b"X-Request-ID"] for _, headers, _ in answers}) == 5


TRACING = "controlplane.observability.middleware.RequestTracingMiddleware"


@pytest.mark.parametrize("change", ["a middleware it does not know", "no tracing middleware"])
def test_a_chain_the_watch_server_cannot_replay_switches_replay_off(monkeypatch, settings, change) -> None:
    monkeypatch.setattr(watchserver, "_handler", None)  # rebuilt from the settings below
    monkeypatch.setattr(watchserver, "_replayable", True)
    if change == "no tracing middleware":
        middleware = [path for path in settings.MIDDLEWARE if path != TRACING]
    else:
        middleware = [*settings.MIDDLEWARE, "django.middleware.gzip.GZipMiddleware"]
    with override_settings(MIDDLEWARE=middleware):
        answers, replayed = _fan_out(monkeypatch, 3)
        assert watchserver._replayable is False  # noqa: SLF001
    monkeypatch.setattr(watchserver, "_handler", None)
    assert replayed == 0 and {status for status, _, _ in answers} == {200}


# Express answers: the server's `send_whole` writes every woken watcher's answer from one loop step.


def _express_fan_out(monkeypatch, watchers: int, accept: bool) -> tuple[list, dict[int, tuple], list]:  # type: ignore[no-untyped-def]
    """`watchers` waiting watches whose server offers `send_whole` (accepting or declining), one change:
    (answers through `send`, what `send_whole` got per watcher, the order of writes and finishes)."""
    reader = key_client("config:read").raw_key
    namespace = config.namespace_create(name="payments", actor="t")
    config.config_entry_set(namespace=namespace, key="a", value=1, actor="t")
    if keycache.enabled():
        # This process trusts the key generation only once its coherence listener has reported in.
        deadline = time.monotonic() + 5
        while keycache.trusted_generation() != keycache.current_generation() and time.monotonic() < deadline:
            time.sleep(0.02)
    order: list[tuple[str, int]] = []
    written: dict[int, tuple] = {}
    finish = watchserver.record_request

    def recording_finish(request, status, elapsed):  # type: ignore[no-untyped-def]
        order.append(("finished", request.scope["watcher"]))
        finish(request, status, elapsed)

    monkeypatch.setattr(watchserver, "record_request", recording_finish)

    def whole_for(number: int):  # type: ignore[no-untyped-def]
        def send_whole(status: int, head: bytes, body: bytes) -> bool:
            order.append(("written", number))
            if accept:
                written[number] = (status, head, body)
            return accept

        return send_whole

    async def scenario() -> list:
        tasks = [asyncio.ensure_future(_serve("index=1&wait=20s", reader, whole_for(n), n)) for n in range(watchers)]
        hub = watchhub.WatchHub.for_running_loop(TOPIC)
        deadline = time.monotonic() + 15
        while hub.watcher_count() < watchers and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await hub.run_db(partial(config.config_entry_set, namespace=namespace, key="a", value=2, actor="t"))
        return await asyncio.wait_for(asyncio.gather(*tasks), 15)

    try:
        answers = asyncio.run(scenario())
    finally:
        watchhub.WatchHub._instances.pop(TOPIC.name, None)  # noqa: SLF001 - a hub per test loop
        _close_hub_connections()
    return answers, written, order


def _header_lines(head: bytes) -> dict[bytes, bytes]:
    return dict(line.split(b": ", 1) for line in head.split(b"\r\n") if line)


@pytest.mark.redis
@pytest.mark.postgres
def test_woken_watchers_are_written_in_one_step_before_their_tasks_resume(monkeypatch) -> None:
    """With the key cache (production mode), the first woken watcher takes the full path and records; every
    other is then written by `send_whole` before any of their tasks finishes, with the same answer."""
    if not keycache.enabled():
        pytest.skip("the key re-check after a wait is a cached one only with the shared cache (production pass)")
    answers, written, order = _express_fan_out(monkeypatch, 6, accept=True)
    through_send = [answer for answer in answers if answer is not None]
    assert len(through_send) == 1 and len(written) == 5  # the leader through the chain, the rest expressed
    status, headers, body = through_send[0]
    assert (status, body) == (200, b'{"a":2}')
    writes = [number for kind, number in order if kind == "written"]
    first_finish = next(index for index, (kind, _) in enumerate(order) if kind == "finished")
    assert order[: len(writes)] == [("written", number) for number in writes] and first_finish == len(writes)
    assert sorted(number for kind, number in order if kind == "finished") == sorted(written)  # metrics, access line
    own = watchserver.PER_REQUEST_HEADERS
    shared = {name.lower(): value for name, value in headers.items() if name.lower() not in own}
    ids = set()
    for got_status, head, got_body in written.values():
        lines = _header_lines(head)
        assert got_status == 200 and got_body == body
        assert {name: value for name, value in lines.items() if name not in own} == shared
        assert re.fullmatch(rb"[0-9a-f]{32}", lines[b"x-request-id"])
        assert re.fullmatch(rb"app;dur=\d+\.\d\d", lines[b"server-timing"])
        assert lines[b"ratelimit-remaining"].isdigit()
        ids.add(lines[b"x-request-id"])
    assert len(ids) == 5


def test_a_server_that_declines_whole_answers_gets_every_answer_through_send(monkeypatch) -> None:
    """`send_whole` returning False (writes paused, client gone) or no key cache (embedded): the tasks answer."""
    answers, written, _ = _express_fan_out(monkeypatch, 4, accept=False)
    assert written == {} and all(answer is not None for answer in answers)
    assert {(status, body) for status, _, body in answers} == {(200, b'{"a":2}')}
    assert len({headers[b"X-Request-ID"] for _, headers, _ in answers}) == 4
