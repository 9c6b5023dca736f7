"""The shared revision cache (production mode): reads follow writes, never go backwards, forget deletions."""

from __future__ import annotations

import threading
import time

import pytest
from django.http import Http404

from configstore import revcache, selectors, services

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _production_only():  # type: ignore[no-untyped-def]
    if not revcache.enabled():
        pytest.skip("the revision cache needs REDIS_URL (production-mode pass)")


def test_reads_follow_writes_and_the_cache_never_goes_backwards():
    namespace = services.namespace_create(name="revcached", actor="t")
    services.config_entry_set(namespace=namespace, key="a", value=1, actor="t")
    assert selectors.config_value("revcached", "a") == 1
    assert revcache.cached("revcached") == (namespace.pk, 1)
    services.config_entry_set(namespace=namespace, key="a", value=2, actor="t")
    assert revcache.cached("revcached") == (namespace.pk, 2)
    assert selectors.config_value("revcached", "a") == 2
    revcache.store("revcached", namespace.pk, 1)  # a late writer's older revision
    assert revcache.cached("revcached") == (namespace.pk, 2)


def test_a_deleted_namespace_is_gone_and_a_recreated_one_starts_empty():
    namespace = services.namespace_create(name="revcached", actor="t")
    services.config_entry_set(namespace=namespace, key="a", value=1, actor="t")
    assert selectors.config_value("revcached", "a") == 1
    services.namespace_delete(namespace=namespace, actor="t")
    with pytest.raises(Http404):
        selectors.config_snapshot("revcached")
    again = services.namespace_create(name="revcached", actor="t")
    assert selectors.config_effective("revcached") == {} and again.revision == 0


def test_an_api_read_costs_at_most_one_redis_round_trip_and_sees_a_write_from_elsewhere(monkeypatch):  # type: ignore[no-untyped-def]
    """The revision rides along with the rate-limit count; a write made since is still seen."""
    from redis.connection import AbstractConnection

    from tests.conftest import key_client

    namespace = services.namespace_create(name="oneround", actor="t")
    services.config_entry_set(namespace=namespace, key="db.host", value="a", actor="t")
    client = key_client("config:read", rate="100/m")  # small limit: counted request by request
    assert client.get("/api/v1/config/oneround/db.host/").json()["value"] == "a"  # warm: key, snapshot

    sent: list[int] = []
    original = AbstractConnection.send_packed_command
    request_thread = threading.current_thread()

    def counting(self, command, check_health=True):  # type: ignore[no-untyped-def]
        if threading.current_thread() is request_thread:  # not the coherence listener's beats
            sent.append(1)
        return original(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    for path in ("/api/v1/config/oneround/db.host/", "/api/v1/config/oneround/"):
        sent.clear()
        response = client.get(path)
        assert response.status_code == 200 and len(sent) == 1, (path, len(sent))

    # A write (as if from another process: the revision reaches Redis on commit) is seen by the next read.
    services.config_entry_set(namespace=namespace, key="db.host", value="b", actor="t")
    assert client.get("/api/v1/config/oneround/db.host/").json()["value"] == "b"
    assert client.get("/api/v1/config/oneround/")["ETag"] == '"2"'


def test_a_process_that_follows_the_namespace_reads_with_no_round_trip_and_still_sees_writes(monkeypatch):  # type: ignore[no-untyped-def]
    """With the coherence listener following the revision and a leased count, a read asks Redis nothing;
    a write returns only after every process's listener has the new revision, so the next read has it."""
    from redis.connection import AbstractConnection

    from controlplane import coherence
    from controlplane.access import keycache
    from tests.conftest import key_client

    namespace = services.namespace_create(name="noround", actor="t")
    services.config_entry_set(namespace=namespace, key="db.host", value="a", actor="t")
    client = key_client("config:read", rate="1000000/h")
    assert client.get("/api/v1/config/noround/db.host/").json()["value"] == "a"
    deadline = time.monotonic() + 3
    while coherence.trusted_values(keycache.shared_pool(), [revcache.cache_key("noround")]) is None:
        assert time.monotonic() < deadline, "the listener never followed the namespace revision"
        client.get("/api/v1/config/noround/db.host/")
        time.sleep(0.05)

    sent: list[int] = []
    original = AbstractConnection.send_packed_command
    request_thread = threading.current_thread()

    def counting(self, command, check_health=True):  # type: ignore[no-untyped-def]
        if threading.current_thread() is request_thread:
            sent.append(1)
        return original(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    for value in ("b", "c", "d"):
        sent.clear()
        for _ in range(20):
            assert client.get("/api/v1/config/noround/db.host/").status_code == 200
        # No revision GET; counts come from leases (the first lease of a window is one count, to learn
        # what the window has left; the next is 64).
        assert len(sent) <= 2, len(sent)
        services.config_entry_set(namespace=namespace, key="db.host", value=value, actor="t")
        assert client.get("/api/v1/config/noround/db.host/").json()["value"] == value


@pytest.mark.postgres
@pytest.mark.integration
def test_a_write_through_one_gunicorn_worker_is_read_by_every_worker_at_once(tmp_path):  # type: ignore[no-untyped-def]
    """Workers read revisions from their listeners; a PUT returns only once all of them have the new one."""
    import asyncio

    import aiohttp

    from tests.conftest import key_client, subprocess_env
    from tests.processes import gunicorn

    services.namespace_create(name="fanout", actor="t")
    raw = key_client("config:read", "config:write", rate="1000000/h").raw_key
    headers = {"Authorization": f"Api-Key {raw}"}

    async def scenario(base: str) -> None:
        url = f"{base}/api/v1/config/fanout/db.host/"
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=40)) as session:

            async def read() -> object:
                async with session.get(url, headers=headers) as response:
                    return (await response.json()).get("value")

            async with session.put(url, json={"value": "v0"}, headers=headers) as response:
                assert response.status in (200, 201)
            await asyncio.gather(*(read() for _ in range(80)))
            await asyncio.sleep(0.5)  # every worker follows the namespace now
            for i in range(1, 8):
                async with session.put(url, json={"value": f"v{i}"}, headers=headers) as response:
                    assert response.status == 200
                assert set(await asyncio.gather(*(read() for _ in range(40)))) == {f"v{i}"}

    with gunicorn(subprocess_env(), tmp_path, workers=4) as base:
        asyncio.run(scenario(base))


def test_a_reader_that_loaded_a_deleted_namespace_cannot_bring_its_revision_back():
    namespace = services.namespace_create(name="tomb", actor="t")
    services.config_entry_set(namespace=namespace, key="a", value=1, actor="t")
    namespace_id = namespace.pk
    services.namespace_delete(namespace=namespace, actor="t")
    revcache.store("tomb", namespace_id, 1)  # a reader that read the row just before the delete
    assert revcache.cached("tomb") is None
    with pytest.raises(Http404):
        selectors.config_snapshot("tomb")
    again = services.namespace_create(name="tomb", actor="t")  # same name, new id: not blocked
    services.config_entry_set(namespace=again, key="a", value=2, actor="t")
    assert revcache.cached("tomb") == (again.pk, 1)
    assert selectors.config_value("tomb", "a") == 2


def test_a_failed_revision_store_drops_the_old_revision(monkeypatch):  # type: ignore[no-untyped-def]
    namespace = services.namespace_create(name="dropped", actor="t")
    services.config_entry_set(namespace=namespace, key="a", value=1, actor="t")
    assert revcache.cached("dropped") == (namespace.pk, 1)

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise ConnectionError("redis went away mid-write")

    monkeypatch.setattr(revcache, "_script", broken)
    revcache.store("dropped", namespace.pk, 2)
    monkeypatch.undo()
    assert revcache.cached("dropped") is None  # readers go to the database, not to revision 1
