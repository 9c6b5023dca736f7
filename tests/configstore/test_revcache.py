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
