"""Every write to a key row invalidates every process's cached copy, whoever makes it (the data layer)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from controlplane.access import keycache
from controlplane.access.models import APIKey
from tests.conftest import key_client
from tests.factories import APIKeyFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def shared() -> None:
    if not settings.REDIS_URL:
        pytest.skip("the shared generation exists only with Redis (production-mode pass)")


def _generation() -> int:
    return int(cache.get(keycache.GENERATION_KEY) or 0)


WRITES = {
    "save": lambda key: (setattr(key, "scopes", ["admin"]), key.save()),
    "save-some-fields": lambda key: (setattr(key, "rate", "5/m"), key.save(update_fields=["rate"])),
    "delete": lambda key: key.delete(),
    "queryset-update": lambda key: APIKey.objects.filter(pk=key.pk).update(revoked=True),
    "queryset-delete": lambda key: APIKey.objects.filter(pk=key.pk).delete(),
    "bulk-update": lambda key: (
        setattr(key, "namespaces", ["x"]),
        APIKey.objects.bulk_update([key], ["namespaces"]),
    ),
    "base-manager-delete": lambda key: APIKey._base_manager.filter(pk=key.pk).delete(),
    "base-manager-update": lambda key: APIKey._base_manager.filter(pk=key.pk).update(revoked=True),
}


class _Bumps:
    """Records every generation bump (`wait`: the commit-time one, at the barrier); the real bump still runs."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[bool] = []
        real = keycache._bump

        def bump(wait: bool = False) -> None:
            self.calls.append(wait)
            real(wait=wait)

        monkeypatch.setattr(keycache, "_bump", bump)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("way", list(WRITES))
def test_every_write_bumps_the_generation_now_and_waits_at_commit(shared, way: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    key = APIKeyFactory()
    bumps = _Bumps(monkeypatch)
    with transaction.atomic():
        before = _generation()
        WRITES[way](key)
        assert _generation() > before  # other processes drop their copies on their next request
        assert True not in bumps.calls  # the barrier waits for the commit
    assert bumps.calls.count(True) == 1  # committed: bumped again, past the barrier


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "write",
    [
        lambda key: APIKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now()),
        lambda key: (setattr(key, "last_used_at", timezone.now()), key.save(update_fields=["last_used_at"])),
    ],
)
def test_last_used_bookkeeping_does_not_invalidate(write, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    key = APIKeyFactory()
    bumps = _Bumps(monkeypatch)
    write(key)
    assert bumps.calls == []


@pytest.mark.django_db(transaction=True)
def test_many_writes_in_one_transaction_wait_at_the_barrier_once(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    keys = [APIKeyFactory() for _ in range(3)]
    bumps = _Bumps(monkeypatch)
    with transaction.atomic():
        for key in keys:
            key.name = "renamed"
            key.save()
        with transaction.atomic():  # a savepoint, as the admin's views use
            APIKey.objects.filter(pk__in=[k.pk for k in keys]).update(rate="9/m")
        APIKey.objects.filter(pk=keys[0].pk).delete()
    assert bumps.calls.count(True) == 1 and bumps.calls.count(False) == 5


@pytest.mark.django_db(transaction=True)
def test_a_write_in_a_rolled_back_savepoint_does_not_hide_a_later_one(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    key = APIKeyFactory()
    bumps = _Bumps(monkeypatch)
    with transaction.atomic():
        try:
            with transaction.atomic():
                APIKey.objects.filter(pk=key.pk).update(rate="1/m")
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass
        APIKey.objects.filter(pk=key.pk).update(revoked=True)
    assert bumps.calls.count(True) == 1


def test_an_expiry_passing_is_seen_from_the_cached_copy_without_any_write() -> None:
    client = key_client("events:read", expiry_date=timezone.now() + timedelta(seconds=1.5))
    assert client.get("/api/v1/events/").status_code == 200
    generation = _generation()
    time.sleep(1.6)
    response = client.get("/api/v1/events/")
    assert response.status_code == 401 and response.json()["detail"] == "The API key has expired."
    assert _generation() == generation  # nothing was written to tell anyone


def test_migration_makes_the_prefix_the_primary_key_of_existing_keys() -> None:
    import importlib

    from django.apps import apps
    from django.contrib.admin.models import ADDITION, LogEntry
    from django.contrib.auth import get_user_model
    from django.contrib.contenttypes.models import ContentType

    migration = importlib.import_module("controlplane.access.migrations.0002_apikey_prefix_as_primary_key")
    key = APIKeyFactory()
    old_id = f"{key.prefix}.{key.hashed_key}"
    APIKey.objects.filter(pk=key.pk).update(id=old_id)  # as the library made it before
    user = get_user_model().objects.create_user("op")
    LogEntry.objects.create(
        user=user,
        content_type=ContentType.objects.get_for_model(APIKey),
        object_id=old_id,
        object_repr="k",
        action_flag=ADDITION,
    )
    migration.prefix_as_primary_key(apps, None)
    assert APIKey.objects.get(prefix=key.prefix).pk == key.prefix
    assert LogEntry.objects.get().object_id == key.prefix
