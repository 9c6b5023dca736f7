"""Writes of the discovery index: one counter per service, advanced by every change discovery can see.

Callers (registration, deregistration, status aggregation, service updates) call `services_index_bump`
inside their transaction; watchers are told on commit (`registry.watch.publish`: in-process hub, Redis
pub/sub in production, the watch hub's poller reads the counters in embedded mode).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import IntegrityError, transaction
from django.db.models import F

from registry.models import Service, ServiceIndex


def _increment(pk: int) -> bool:
    return bool(ServiceIndex.objects.filter(service_id=pk).update(value=F("value") + 1))


def services_index_bump(*, service_ids: Iterable[int]) -> dict[int, int]:
    """Advance the discovery index of each service by one; `{service id: new index}`; publish on commit.

    Counters are updated one at a time in service-id order, so two transactions bumping overlapping
    sets lock the rows in the same order and cannot deadlock. A service's first bump creates its row
    (in a savepoint: a concurrent first bump wins the insert, this one then increments). Call inside
    the transaction that made the change.
    """
    from registry.watch import publish

    bumped: dict[int, int] = {}
    for pk in sorted(set(service_ids)):
        if not _increment(pk):
            name = Service.objects.filter(pk=pk).values_list("name", flat=True).first()
            if name is None:
                continue  # deleted meanwhile: its watchers hear of the deletion instead
            try:
                with transaction.atomic():
                    ServiceIndex.objects.create(service_id=pk, value=1)
            except IntegrityError:
                _increment(pk)
        name, index = ServiceIndex.objects.filter(service_id=pk).values_list("service__name", "value").get()
        bumped[pk] = index
        transaction.on_commit(lambda name=name, index=index, pk=pk: publish(name, index, pk))
    return bumped


def service_index_deleted(*, service_id: int, name: str) -> None:
    """Tell watchers on commit that `name` (id `service_id`) is gone; they answer 404."""
    from registry.watch import publish

    transaction.on_commit(lambda: publish(name, -1, service_id))
