"""Compare-and-swap under real concurrency (PostgreSQL): no lost update, no double apply."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from configstore import selectors, services
from configstore.models import Revision
from tests.conftest import key_client

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_100_concurrent_increments_with_if_match_and_retry_end_at_exactly_plus_100():
    namespace = services.namespace_create(name="counters", actor="t")
    services.config_entry_set(namespace=namespace, key="hits", value=0, actor="t")
    clients = [key_client("config:read", "config:write", rate="100000/m") for _ in range(8)]
    conflicts = []

    def increment(index: int) -> None:
        client = clients[index % len(clients)]
        try:
            while True:
                current = client.get("/api/v1/config/counters/hits/")
                etag = current["ETag"]
                response = client.put(
                    "/api/v1/config/counters/hits/",
                    {"value": current.json()["value"] + 1},
                    format="json",
                    HTTP_IF_MATCH=etag,
                )
                if response.status_code == 200:
                    return
                assert response.status_code == 412, response.content
                conflicts.append(index)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(increment, range(100)))
    assert selectors.config_value("counters", "hits") == 100
    assert Revision.objects.filter(namespace=namespace).count() == 101
    assert conflicts, "8 writers on one key must have collided at least once"
