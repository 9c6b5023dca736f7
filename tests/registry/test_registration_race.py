"""Concurrent first registrations of one instance id on PostgreSQL: all 2xx, one row, no duplicate checks.

Real concurrency: 50 threads, each with its own database connection, released together by a barrier and
registering through the API (the full request path: authentication, serializer, service, response).
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from rest_framework.test import APIClient

from controlplane.events.models import Event
from registry.models import Check, Instance
from tests.factories import APIKeyFactory
from tests.registry.factories import ServiceFactory

THREADS = 50
ROUNDS = 4


def _register_concurrently(raw_key: str, service: str, checks: list[dict]) -> list[list[object]]:
    """Each round, all threads register `web-<round>` at once; returns the outcomes per round.

    The same 50 threads serve every round (a thread keeps its database and Redis connections, as a
    threaded server's do), so rounds differ only in which id they race for.
    """
    barrier = threading.Barrier(THREADS)
    outcomes: list[list[object]] = [[None] * THREADS for _ in range(ROUNDS)]

    def worker(slot: int) -> None:
        from django.db import connection as thread_connection

        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
        try:
            for round_number in range(ROUNDS):
                body = {"instance_id": f"web-{round_number}", "address": "127.0.0.1", "port": 8000 + slot}
                barrier.wait(60)
                try:
                    response = client.post(
                        f"/api/v1/services/{service}/instances/", {**body, "checks": checks}, format="json"
                    )
                    outcomes[round_number][slot] = (
                        response.status_code if response.status_code < 300 else response.content
                    )
                except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                    outcomes[round_number][slot] = exc
        finally:
            thread_connection.close()

    threads = [threading.Thread(target=worker, args=(slot,)) for slot in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    return outcomes


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_first_registrations_all_succeed_with_one_row_and_no_duplicate_checks() -> None:
    assert connection.vendor == "postgresql"
    service = ServiceFactory(name="racing")
    _, raw = APIKeyFactory.create_with_plaintext(scopes=["registry:write", "registry:read"], rate="100000/h")
    checks = [
        {"name": "http", "kind": "http", "path": "/health", "interval": 30},
        {"name": "beat", "kind": "ttl", "ttl": 60},
    ]
    for round_number, outcomes in enumerate(_register_concurrently(raw, service.name, checks)):
        instance_id = f"web-{round_number}"
        failures = [code for code in outcomes if not (isinstance(code, int) and 200 <= code < 300)]
        assert not failures, failures[:3]  # the answers themselves, so a failure says why
        assert outcomes.count(201) == 1, outcomes  # exactly one registration created the instance
        instance = Instance.objects.get(service=service, instance_id=instance_id)
        assert sorted(Check.objects.filter(instance=instance).values_list("name", flat=True)) == ["beat", "http"]
        registered = Event.objects.filter(kind="instance.registered", subject=f"racing/{instance_id}")
        assert registered.count() == THREADS
        assert [e.data["created"] for e in registered].count(True) == 1
        assert 8000 <= instance.port < 8000 + THREADS  # the last writer's values, not a mix
    assert Instance.objects.filter(service=service).count() == ROUNDS
