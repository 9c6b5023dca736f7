"""The shared revision cache (production mode): reads follow writes, never go backwards, forget deletions."""

from __future__ import annotations

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


def test_an_api_read_costs_one_redis_round_trip_and_sees_a_write_from_elsewhere(monkeypatch):  # type: ignore[no-untyped-def]
    """The revision rides along with the rate-limit count; a write made since is still seen."""
    from redis.connection import AbstractConnection

    from tests.conftest import key_client

    namespace = services.namespace_create(name="oneround", actor="t")
    services.config_entry_set(namespace=namespace, key="db.host", value="a", actor="t")
    client = key_client("config:read")
    assert client.get("/api/v1/config/oneround/db.host/").json()["value"] == "a"  # warm: key, snapshot

    sent: list[int] = []
    original = AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):  # type: ignore[no-untyped-def]
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
