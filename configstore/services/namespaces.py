"""Namespace writes: create, describe, delete (with everything in it)."""

from __future__ import annotations

from django.db import transaction

from configstore import notify, revcache
from configstore.access import ConfigActor, as_actor, require_namespace, require_operator, require_secrets
from configstore.models import Entry, Namespace
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
def namespace_delete(*, namespace: Namespace, actor: str | ConfigActor) -> None:
    """Delete a namespace with its entries, rules, sources and history; watchers get 404.

    It deletes every secret entry and source too, so a namespace holding any needs the secrets capability
    and, for sources, an operator.
    """
    who = as_actor(actor)
    require_namespace(who, namespace.name)
    require_secrets(who, Entry.objects.filter(namespace=namespace, secret=True).values_list("key", flat=True))
    if namespace.sources.exists():
        require_operator(who, "Removing a namespace's sources")
    name, namespace_id = namespace.name, namespace.pk
    namespace.delete()
    emit("config.namespace_deleted", subject=name, data={"namespace": name}, actor=who.name)
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
