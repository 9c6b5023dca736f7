"""Discovery blocking queries through a real uvicorn watch server: index, wake-ups on real transitions, limits.

Changes are made in this process (the test), so they reach the server the cross-process way: Redis
pub/sub in the production-mode pass (its poller runs every 5 s there, so a wake-up within 2 s is the
pub/sub's), the hub's poller on the stored index in the embedded pass.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from registry import services
from registry.models import Check, Service, ServiceIndex
from tests.configstore.test_watch import _uvicorn, get
from tests.conftest import key_client

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
TTL = {"name": "alive", "kind": "ttl", "ttl": 60}


@pytest.fixture
def watch_server(transactional_db, tmp_path):  # type: ignore[no-untyped-def]
    yield from _uvicorn("controlplane.asgi:application", tmp_path)


@pytest.fixture
def reader(transactional_db):  # type: ignore[no-untyped-def]
    return key_client("registry:read").raw_key


def _service(name: str = "pay", instances: tuple[str, ...] = ("a", "b")) -> Service:
    service = services.service_create(name=name, actor="t")
    for instance_id in instances:
        instance, _ = services.instance_register(
            service=service, instance_id=instance_id, address="10.0.0.1", port=8080, checks=[TTL], actor="t"
        )
        services.check_ttl_update(instance=instance, actor="t")  # passing: discoverable
    return service


def _index(port: int, name: str, key: str) -> int:
    status, headers, _, _ = get(port, f"/api/v1/discover/{name}/?index=0", key)
    assert status == 200
    return int(headers["x-registry-index"])


def _stored(name: str) -> int:
    return ServiceIndex.objects.get(service__name=name).value


def _ids(body: bytes) -> list[str]:
    return [item["instance_id"] for item in json.loads(body)]


def _blocking(port: int, name: str, index: int, key: str, wait: str = "20s", query: str = ""):  # type: ignore[no-untyped-def]
    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(get, port, f"/api/v1/discover/{name}/?index={index}&wait={wait}{query}", key)
    pool.shutdown(wait=False)
    time.sleep(0.5)
    assert not future.done(), "the blocking query answered before any change"
    return future


def _instance(service: Service, instance_id: str):  # type: ignore[no-untyped-def]
    return service.instances.get(instance_id=instance_id)


def test_answers_at_once_with_the_index_and_the_plain_body(watch_server, reader):
    _service()
    status, headers, body, elapsed = get(watch_server, "/api/v1/discover/pay/?index=0&wait=10s", reader)
    assert status == 200 and elapsed < 2 and _ids(body) == ["a", "b"]
    index = int(headers["x-registry-index"])
    assert index == _stored("pay") > 0
    # The same body and index as the plain (DRF) discovery read, served by Django on the same port.
    status, plain_headers, plain_body, _ = get(watch_server, "/api/v1/discover/pay/", reader)
    assert status == 200 and json.loads(plain_body) == json.loads(body)
    assert plain_headers["x-registry-index"] == str(index)


@pytest.mark.parametrize(
    "change",
    ["turns critical", "ttl lapses", "deregistered", "registered", "maintenance", "recovers"],
)
def test_a_blocking_query_wakes_within_2s_of_a_real_transition(watch_server, reader, change):
    service = _service()
    if change == "recovers":
        services.check_ttl_update(instance=_instance(service, "b"), status="critical", actor="t")
    index = _index(watch_server, "pay", reader)
    waiting = _blocking(watch_server, "pay", index, reader)
    changed_at = time.monotonic()
    if change == "turns critical":
        services.check_ttl_update(instance=_instance(service, "b"), status="critical", output="down", actor="t")
        expected = ["a"]
    elif change == "ttl lapses":
        Check.objects.filter(instance=_instance(service, "b")).update(next_run_at=timezone.now() - timedelta(seconds=1))
        assert services.ttl_checks_expire() == 1
        expected = ["a"]
    elif change == "deregistered":
        services.instance_deregister(instance=_instance(service, "a"), actor="t")
        expected = ["b"]
    elif change == "registered":
        instance, _ = services.instance_register(
            service=service, instance_id="c", address="10.0.0.3", port=8080, checks=[], actor="t"
        )
        expected = ["a", "b", "c"]  # no checks: passing at once
    elif change == "maintenance":
        services.instance_set_maintenance(instance=_instance(service, "a"), enabled=True, actor="t")
        expected = ["b"]
    else:
        services.check_ttl_update(instance=_instance(service, "b"), actor="t")
        expected = ["a", "b"]
    status, headers, body, _ = waiting.result(timeout=10)
    woke_after = time.monotonic() - changed_at
    assert status == 200 and woke_after < 2, woke_after
    assert int(headers["x-registry-index"]) > index
    assert _ids(body) == expected
    assert int(headers["x-registry-index"]) == _stored("pay")


def test_times_out_with_the_same_index_and_unchanged_registrations_do_not_wake(watch_server, reader):
    service = _service()
    index = _index(watch_server, "pay", reader)
    # A heartbeat that keeps the check passing and a re-registration with the same fields change nothing
    # discovery shows: the index stays, the query waits its full `wait`.
    services.check_ttl_update(instance=_instance(service, "a"), actor="t")
    services.instance_register(service=service, instance_id="a", address="10.0.0.1", port=8080, checks=[TTL], actor="t")
    status, headers, body, elapsed = get(watch_server, f"/api/v1/discover/pay/?index={index}&wait=1s", reader)
    assert status == 200 and 0.9 <= elapsed < 3
    assert headers["x-registry-index"] == str(index) and _ids(body) == ["a", "b"]


def test_filters_apply_to_blocking_answers(watch_server, reader):
    service = _service()
    services.check_ttl_update(instance=_instance(service, "b"), status="warning", actor="t")
    index = _index(watch_server, "pay", reader)
    status, _, body, _ = get(watch_server, f"/api/v1/discover/pay/?index={index - 1}&status=passing", reader)
    assert status == 200 and _ids(body) == ["a"]
    passing = _blocking(watch_server, "pay", index, reader, query="&status=passing")
    everyone = _blocking(watch_server, "pay", index, reader)
    services.check_ttl_update(instance=_instance(service, "a"), status="critical", actor="t")
    assert _ids(passing.result(timeout=10)[2]) == []
    assert _ids(everyone.result(timeout=10)[2]) == ["b"]
    status, _, body, _ = get(watch_server, "/api/v1/discover/pay/?index=0&status=bogus", reader)
    assert status == 400 and set(json.loads(body)["errors"]) == {"status"}


def test_refusals_scopes_and_rate_limits(watch_server, reader):
    _service()
    path = "/api/v1/discover/pay/?index=0&wait=1s"
    for key, expected in [
        (None, 401),
        ("bogus.key", 401),
        (key_client("config:read").raw_key, 403),
        (key_client("registry:write").raw_key, 403),
    ]:
        status, headers, body, elapsed = get(watch_server, path, key)
        assert status == expected and headers["content-type"] == "application/problem+json"
        assert json.loads(body)["status"] == expected and elapsed < 2
    assert get(watch_server, "/api/v1/discover/nope/?index=0", reader)[0] == 404
    status, _, body, _ = get(watch_server, "/api/v1/discover/pay/?index=x&wait=forever", reader)
    assert status == 400 and set(json.loads(body)["errors"]) == {"index", "wait"}
    slow = key_client("registry:read", rate="2/m").raw_key
    answers = [get(watch_server, "/api/v1/discover/pay/?index=0&wait=0s", slow) for _ in range(3)]
    assert [answer[0] for answer in answers] == [200, 200, 429]
    assert answers[0][1]["ratelimit-limit"] == "2" and int(answers[2][1]["retry-after"]) >= 1
    # Registry reads have no namespace limits: a config-namespace-limited key is served like on the API.
    limited = key_client("registry:read", namespaces=["payments"])
    assert get(watch_server, "/api/v1/discover/pay/?index=0", limited.raw_key)[0] == 200
    assert limited.get("/api/v1/discover/pay/").status_code == 200


def test_a_key_revoked_while_waiting_is_refused(watch_server):
    from controlplane.access.models import APIKey

    service = _service()
    client = key_client("registry:read")
    index = _index(watch_server, "pay", client.raw_key)
    waiting = _blocking(watch_server, "pay", index, client.raw_key)
    prefix = client.raw_key.split(".")[0]
    key = APIKey.objects.get(prefix=prefix)
    key.revoked = True
    key.save()
    services.check_ttl_update(instance=_instance(service, "a"), status="critical", actor="t")
    status, headers, body, _ = waiting.result(timeout=10)
    assert status == 401 and headers["content-type"] == "application/problem+json"


def test_a_deleted_service_ends_its_watches(watch_server, reader):
    service = _service()
    index = _index(watch_server, "pay", reader)
    waiting = _blocking(watch_server, "pay", index, reader)
    services.service_delete(service=service, actor="t")
    assert waiting.result(timeout=10)[0] == 404
    # Recreated: a new id and its own index from 0 (the client resets when the index goes backwards).
    _service(instances=("z",))
    status, headers, body, _ = get(watch_server, "/api/v1/discover/pay/?index=0", reader)
    assert status == 200 and _ids(body) == ["z"] and int(headers["x-registry-index"]) < index + 3


def test_the_wsgi_route_returns_the_index_and_never_blocks(reader):
    _service()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {reader}")
    plain = client.get("/api/v1/discover/pay/")
    index = int(plain["X-Registry-Index"])
    assert plain.status_code == 200 and index == _stored("pay")
    behind = client.get(f"/api/v1/discover/pay/?index={index - 1}")
    assert behind.status_code == 200 and behind["X-Registry-Index"] == str(index)
    blocked = client.get(f"/api/v1/discover/pay/?index={index}&wait=5s")
    assert blocked.status_code == 503 and "watch server" in blocked.json()["detail"]
    assert client.get(f"/api/v1/discover/pay/?index={index}&wait=0s").status_code == 200
    assert client.get("/api/v1/discover/pay/?index=x").status_code == 400


def test_the_index_is_durable_and_only_moves_forward(reader):
    service = _service()
    seen = [_stored("pay")]
    instance = _instance(service, "a")
    for status in ("critical", "passing", "warning", "passing"):
        services.check_ttl_update(instance=instance, status=status, actor="t")
        seen.append(_stored("pay"))
    services.service_update(service=service, capabilities=["pay"], actor="t")
    seen.append(_stored("pay"))
    assert seen == sorted(seen) and len(set(seen)) == len(seen)  # strictly increasing, one per change
