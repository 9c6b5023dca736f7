"""Namespace writes: create, describe, delete (with everything in it)."""

from __future__ import annotations

from django.db import transaction

from configstore import notify, revcache
from configstore.models import Namespace
from controlplane.events.services import emit


@transaction.atomic
def namespace_create(*, name: str, description: str = "", actor: str) -> Namespace:
    """Create a namespace at revision 0."""
    namespace = Namespace(name=name, description=description)
    namespace.full_clean()
    namespace.save()
    emit("config.namespace_created", subject=name, data={"namespace": name}, actor=actor)
    if revcache.enabled():
        transaction.on_commit(lambda: revcache.forget(name))  # a namespace of the same name may have lived before
    return namespace


@transaction.atomic
def namespace_delete(*, namespace: Namespace, actor: str) -> None:
    """Delete a namespace with its entries, rules, sources and history; watchers get 404."""
    name, namespace_id = namespace.name, namespace.pk
    namespace.delete()
    emit("config.namespace_deleted", subject=name, data={"namespace": name}, actor=actor)
    if revcache.enabled():
        transaction.on_commit(lambda: revcache.forget(name, deleted_id=namespace_id))
    transaction.on_commit(lambda: notify.publish(name, -1, namespace_id))


@transaction.atomic
def namespace_update(*, namespace: Namespace, description: str, actor: str) -> Namespace:
    """Change a namespace's description."""
    namespace.description = description
    namespace.full_clean()
    namespace.save(update_fields=["description", "updated_at"])
    emit("config.namespace_updated", subject=namespace.name, data={"namespace": namespace.name}, actor=actor)
    return namespace
