"""Knowing the API-key generation without a round trip, counting from leases, and the revocation barrier.

These run in the production-mode pass (Redis): without a shared cache there is nothing to coordinate.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from django.conf import settings
from django.core.cache import cache
from rest_framework.test import APIClient

from controlplane import coherence
from controlplane.access import keycache, ratelimit
from controlplane.access.services import api_key_revoke
from tests.conftest import key_client, subprocess_env
from tests.controlplane.test_ratelimit import _burst
from tests.factories import APIKeyFactory
from tests.processes import gunicorn

pytestmark = pytest.mark.redis


@pytest.fixture(autouse=True)
def _production_mode() -> None:
    if not settings.REDIS_URL:
        pytest.skip("coherence and leases need the shared cache (production-mode pass)")


def _wait_trusted(timeout: float = 3.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        generation = keycache.trusted_generation()
        if generation is not None:
            return generation
        time.sleep(0.01)
    raise AssertionError("the coherence listener never reported in")


def _client_for_fresh_key(rate: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {APIKeyFactory.create_with_hour_left(rate)[1]}")
    return client


def _revoke_as_another_process_would(key) -> None:  # type: ignore[no-untyped-def]
    """The row changes and the shared generation moves, but this process's own cache is left alone.

    An ORM write in this process would drop its cached records itself (the data layer invalidates
    locally too), which would hide whether the shared generation alone reaches it.
    """
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("UPDATE access_apikey SET revoked = %s WHERE prefix = %s", [True, key.prefix])
    cache.incr(keycache.GENERATION_KEY)


class _CountCalls:
    """Counts round trips to the rate-limit script (wraps the real call; Redis still answers)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = ratelimit._count

        def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(ratelimit, "_count", counted)


@pytest.mark.django_db
def test_listener_learns_the_generation_and_follows_a_bump() -> None:
    _wait_trusted()
    coherence.barrier()  # settle what earlier tests changed
    generation = keycache.trusted_generation()
    assert generation == keycache.current_generation()
    cache.incr(keycache.GENERATION_KEY)  # as another process would
    coherence.barrier()  # returns only once this process's listener acknowledged it
    assert keycache.trusted_generation() == generation + 1


@pytest.mark.django_db
def test_a_trusting_process_counts_a_busy_key_from_leases(monkeypatch: pytest.MonkeyPatch) -> None:
    client = _client_for_fresh_key("1000000/h")
    assert client.get("/api/v1/events/").status_code == 200
    _wait_trusted()
    trips = _CountCalls(monkeypatch)
    remaining = []
    for _ in range(200):
        response = client.get("/api/v1/events/")
        assert response.status_code == 200
        remaining.append(int(response["RateLimit-Remaining"]))
    assert trips.calls <= 200 // ratelimit.LEASE_MAX + 2  # 4 leases of 64, not 200 round trips
    assert remaining == sorted(remaining, reverse=True) and len(set(remaining)) == 200


@pytest.mark.django_db
def test_a_small_limit_is_still_counted_request_by_request(monkeypatch: pytest.MonkeyPatch) -> None:
    client = _client_for_fresh_key("100/h")
    _wait_trusted()
    trips = _CountCalls(monkeypatch)
    statuses = [client.get("/api/v1/events/").status_code for _ in range(102)]
    assert statuses == [200] * 100 + [429] * 2
    # One count per admitted request; the window is spent, so the refusals are answered locally.
    assert trips.calls == 100


@pytest.mark.django_db
def test_a_key_revoked_elsewhere_is_refused_while_the_process_trusts_its_copy() -> None:
    client = key_client("events:read", rate="1000000/h")
    assert client.get("/api/v1/events/").status_code == 200
    _wait_trusted()
    key = keycache.lookup(client.raw_key.split(".")[0], lambda prefix: None)
    assert key is not None  # cached in this process
    # Another process revokes: the row changes and the shared generation moves; this process's cache is
    # not touched directly (an ORM write here would drop it: see `_revoke_as_another_process_would`).
    _revoke_as_another_process_would(key)
    coherence.barrier()
    response = client.get("/api/v1/events/")
    assert response.status_code == 401
    assert response.json()["detail"] == "The API key has been revoked."


@pytest.mark.django_db
def test_barrier_waits_for_a_silent_process_only_until_its_trust_must_have_lapsed() -> None:
    _wait_trusted()
    coherence.barrier()  # settle (a recently flushed Redis makes the first barrier wait the full time)
    client = cache.client.get_client(write=True)
    # A process that registered and then stopped beating (killed, or stuck), whose acknowledgement is
    # stale: it is waited for until SAFE_AFTER_SECONDS, never longer, and never assumed gone early.
    redis_now_ms = int(client.time()[0]) * 1000 + int(client.time()[1]) // 1000
    client.zadd(cache.make_key(coherence.LISTENERS_KEY), {"silent": redis_now_ms + 900})
    client.set(cache.make_key(coherence.ACK_KEY % "silent"), 0, px=100)  # even if its ack vanishes early
    started = time.monotonic()
    coherence.barrier()
    waited = time.monotonic() - started
    client.zrem(cache.make_key(coherence.LISTENERS_KEY), "silent")
    assert coherence.SAFE_AFTER_SECONDS - 0.05 < waited < coherence.SAFE_AFTER_SECONDS + 0.5


@pytest.mark.django_db
def test_a_stalled_listener_stops_trust_and_requests_fall_back_to_the_round_trip(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = key_client("events:read", rate="1000000/h")
    assert client.get("/api/v1/events/").status_code == 200
    _wait_trusted()
    monkeypatch.setattr(coherence, "TRUST_SECONDS", 0.0)  # no beat may extend trust from now on
    time.sleep(3 * coherence.HEARTBEAT_SECONDS)  # let a beat in flight finish
    monkeypatch.setattr(coherence._state, "trusted_until", 0.0)  # as if the last beat were long ago
    trips = _CountCalls(monkeypatch)
    for _ in range(5):
        assert client.get("/api/v1/events/").status_code == 200
    assert trips.calls == 5


@pytest.mark.postgres
@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_leases_never_admit_more_than_the_limit_under_4_gunicorn_workers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Large limits are leased out in blocks; the total admitted still never passes the limit."""
    with gunicorn(subprocess_env(), tmp_path, workers=4) as base:
        url = f"{base}/api/v1/events/"
        asyncio.run(
            _burst(url, APIKeyFactory.create_with_hour_left("100000/h")[1], 40)
        )  # every worker's listener is up
        time.sleep(0.5)
        for _ in range(2):
            _, raw = APIKeyFactory.create_with_hour_left("3000/h")
            statuses = asyncio.run(_burst(url, raw, 3400))
            # Leases shrink to one count as the window runs out, so at most one count per worker is
            # left unused when the burst ends.
            assert 3000 - 4 <= statuses.count(200) <= 3000, statuses.count(200)
            assert statuses.count(200) + statuses.count(429) == 3400


@pytest.mark.postgres
@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_revocation_from_another_process_binds_trusting_workers_on_the_next_request(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The workers answer from leases and trusted copies; the revoking call returns only after all know."""
    with gunicorn(subprocess_env(), tmp_path, workers=4) as base:
        url = f"{base}/api/v1/events/"
        for _ in range(5):
            key, raw = APIKeyFactory.create_with_hour_left("1000000/h")
            assert set(asyncio.run(_burst(url, raw, 60))) == {200}
            api_key_revoke(key)  # this process: commits, bumps, waits at the barrier
            assert set(asyncio.run(_burst(url, raw, 60))) == {401}


@pytest.mark.postgres
@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_workers_that_exit_cleanly_leave_the_registry_so_writers_do_not_wait_for_them(tmp_path) -> None:  # type: ignore[no-untyped-def]
    _wait_trusted()
    with gunicorn(subprocess_env(), tmp_path, workers=2) as base:
        _, raw = APIKeyFactory.create_with_hour_left("1000000/h")
        asyncio.run(_burst(f"{base}/api/v1/events/", raw, 20))
        time.sleep(0.5)  # both workers registered
    started = time.monotonic()
    coherence.barrier()
    # Registrations of workers that vanished would hold a writer for up to LISTENER_TTL_MS (1 s).
    assert time.monotonic() - started < 0.4


@pytest.mark.django_db
def test_a_listener_thread_that_died_is_replaced() -> None:
    import threading

    _wait_trusted()
    dead = threading.Thread(target=lambda: None)
    dead.start()
    dead.join()
    dead.stopping = threading.Event()  # type: ignore[attr-defined]
    dead.stop = dead.stopping.set  # type: ignore[attr-defined]
    previous = coherence._state.listener
    previous.stop()  # the real one stops; the process now holds a dead thread as its listener
    coherence._state.listener = dead  # type: ignore[assignment]
    coherence._state.trusted_until = 0.0
    assert keycache.trusted_generation() is None  # notices, starts a new listener
    assert coherence._state.listener is not dead and coherence._state.listener.is_alive()
    _wait_trusted()


@pytest.mark.django_db
def test_the_watch_path_refuses_a_key_revoked_by_another_process() -> None:
    """The watch server authenticates outside DRF; it too must notice a key changed elsewhere."""
    from django.test import RequestFactory
    from rest_framework import exceptions

    from configstore import services as config_services
    from configstore.api.watch import _authorize

    config_services.namespace_create(name="watched", actor="t")
    key, raw = APIKeyFactory.create_with_plaintext(scopes=["config:read"])
    _wait_trusted()
    coherence.barrier()  # this process has applied the key creation's bump: what it caches now stays
    request = RequestFactory().get("/api/v1/config/watched/watch/", HTTP_AUTHORIZATION=f"Api-Key {raw}")
    assert _authorize(request, "watched")[0]  # authenticated; the record is now cached in this process
    _revoke_as_another_process_would(key)
    request = RequestFactory().get("/api/v1/config/watched/watch/", HTTP_AUTHORIZATION=f"Api-Key {raw}")
    with pytest.raises(exceptions.AuthenticationFailed, match="revoked"):
        _authorize(request, "watched")


def test_coherence_does_not_import_the_access_app() -> None:
    """The coherence machinery is platform code: apps register with it, it imports none of them."""
    import ast
    from pathlib import Path

    tree = ast.parse(Path(coherence.__file__).read_text())
    imported = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    imported += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    assert not [name for name in imported if name.startswith(("controlplane.", "configstore", "registry", "pipelines"))]
    assert keycache.GENERATION_KEY in coherence._generations  # the access app registered what it needs


class _RedisAnswering:
    """The shared cache's real Redis client, except for what `CONFIG GET` / `INFO cluster` answer.

    The Redis server is shared by every test run on this machine, so its policy is not changed for real.
    """

    def __init__(self, real, *, policy: str | None = None, cluster: int | None = 0) -> None:  # type: ignore[no-untyped-def]
        self.real, self.policy, self.cluster = real, policy, cluster

    def config_get(self, name: str) -> dict:
        from redis.exceptions import ResponseError

        if self.policy is None:
            raise ResponseError("unknown command 'CONFIG'")  # managed services often disable it
        return {name: self.policy}

    def info(self, section: str) -> dict:
        from redis.exceptions import ResponseError

        if self.cluster is None:
            raise ResponseError("unknown command 'INFO'")
        return {"cluster_enabled": self.cluster}

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.real, name)


def test_the_real_redis_has_what_coherence_needs() -> None:
    found = coherence.redis_properties()
    assert found["maxmemory_policy"] not in coherence.UNSAFE_EVICTION and found["cluster"] is False
    assert found["problems"] == []
    from controlplane.access.checks import check_coherence_redis

    assert check_coherence_redis() == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("policy", "cluster", "status", "check_ids"),
    [
        ("allkeys-lru", 0, "down", {"access.W001"}),
        ("allkeys-lfu", 0, "down", {"access.W001"}),
        ("allkeys-random", 0, "down", {"access.W001"}),
        ("volatile-lru", 0, "up", set()),
        ("noeviction", 1, "down", {"access.E001"}),
        (None, 0, "up", {"access.W003"}),  # CONFIG disabled: "unknown", said so
        ("noeviction", None, "up", set()),  # INFO disabled: a warning in /readyz only
    ],
)
def test_readyz_and_check_deploy_report_the_redis_properties(monkeypatch, policy, cluster, status, check_ids) -> None:  # type: ignore[no-untyped-def]
    from django.test import Client

    from controlplane.access.checks import check_coherence_redis

    real = coherence._client()
    monkeypatch.setattr(coherence, "_client", lambda: _RedisAnswering(real, policy=policy, cluster=cluster))
    component = Client().get("/readyz").json()["components"]["coherence"]
    assert component["status"] == status, component
    if status == "down":
        assert ("allkeys" in component["error"]) == (cluster == 0)
        assert ("Cluster" in component["error"]) == (cluster == 1)
    else:
        assert component["maxmemory_policy"] == (policy or "unknown")
        assert bool(component.get("warnings")) == (policy is None or cluster is None)
    messages = check_coherence_redis()
    assert {message.id for message in messages} == check_ids


@pytest.mark.django_db
def test_without_the_listener_every_request_reads_the_generation_and_revocation_still_binds(
    settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """COHERENCE_LISTENER=false: the simpler design the benchmark compares with (one round trip a request)."""
    settings.COHERENCE_LISTENER = False
    client = key_client("events:read", rate="1000000/h")
    trips = _CountCalls(monkeypatch)
    for _ in range(5):
        assert client.get("/api/v1/events/").status_code == 200
    assert trips.calls == 5 and keycache.trusted_generation() is None
    from controlplane.access.models import APIKey

    _revoke_as_another_process_would(APIKey.objects.get(prefix=client.raw_key.split(".")[0]))
    assert client.get("/api/v1/events/").status_code == 401


@pytest.mark.django_db
@pytest.mark.parametrize("listener", [True, False])
def test_a_key_narrowed_elsewhere_is_applied_to_the_request_that_notices(settings, listener: bool) -> None:
    """The request that learns of a change re-authenticates; the view must then use the fresh record."""
    from django.db import connection

    from configstore import services as config_services
    from controlplane.access.models import APIKey

    settings.COHERENCE_LISTENER = listener
    for name in ("visible", "other"):
        config_services.config_entry_set(
            namespace=config_services.namespace_create(name=name, actor="t"), key="a", value=1, actor="t"
        )
    client = key_client("config:read", rate="1000000/h", namespaces=["visible"])
    if listener:
        _wait_trusted()
        coherence.barrier()
    assert client.get("/api/v1/config/visible/").status_code == 200
    key = APIKey.objects.get(prefix=client.raw_key.split(".")[0])
    with connection.cursor() as cursor:  # another process narrows the key: row + shared generation only
        cursor.execute("UPDATE access_apikey SET namespaces = %s WHERE prefix = %s", ['["other"]', key.prefix])
    cache.incr(keycache.GENERATION_KEY)
    if listener:
        coherence.barrier()
    assert client.get("/api/v1/config/visible/").status_code == 404
    assert client.get("/api/v1/config/other/").status_code == 200
