"""Celery tasks of the config store: thin adapters over the source services."""

from __future__ import annotations

from celery import shared_task

from configstore.models import Source
from configstore.services import source_reload, sources_reload


@shared_task(name="configstore.tasks.reload_sources")
def reload_sources(namespace: str | None = None) -> dict[str, str]:
    """Beat task: re-read every enabled source with reload on and apply the changed ones."""
    return {name: result.status for name, result in sources_reload(namespace=namespace, actor="system:reload").items()}


@shared_task(name="configstore.tasks.reload_source")
def reload_source(source_id: int, force: bool = True) -> str | None:
    """Reload one source by id (admin "reload now"); a deleted source is ignored."""
    source = Source.objects.select_related("namespace").filter(pk=source_id).first()
    if source is None:
        return None
    return source_reload(source=source, force=force, actor="system:reload").status
