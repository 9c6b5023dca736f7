"""Writes for source layers: define, change, remove and (re)load file and env sources.

A reload hashes the source; when the content changed (or on `force`) it is parsed and applied through
`config_changes_apply` as one revision replacing the layer. A source that cannot be read, parsed or
validated applies nothing: its old values stay, the error is recorded on the source and
`config.source_failed` is emitted. So does an empty document (an empty file, no variable with the prefix)
unless the source says `allow_empty`: a truncated file must not wipe the layer.

Sources are operator territory: defining, changing or removing one needs an operator actor (API scope
`admin`, a superuser in the admin). A reload applies its change set with the reloading actor's
capabilities (the beat and management commands are the trusted system).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from configstore import conf
from configstore.access import ConfigActor, as_actor, require_namespace, require_operator
from configstore.formats import FormatError, flatten
from configstore.models import Namespace, Source, SourceKind
from configstore.services.changes import EntryChange, config_changes_apply
from configstore.services.entries import object_keys, parse_config_text
from configstore.sources import SOURCE_KINDS, SourceReader, SourceReadError
from controlplane.events.services import emit

logger = logging.getLogger("configstore.sources")
DEFAULT_PRIORITY = {SourceKind.FILE: 200, SourceKind.ENV: 300}
EMPTY_SOURCE_MESSAGE = (
    "The source holds no keys; applying it would delete every key of its layer. Turn on allow_empty to allow that."
)


@dataclass(frozen=True)
class ReloadResult:
    """What a reload did: `applied` (with the revision), `unchanged`, `failed` (with the error) or `skipped`."""

    status: str
    revision: int | None = None
    error: str = ""


def _validate(source: Source) -> None:
    errors: dict[str, list[str]] = {}
    reader = SOURCE_KINDS.get(source.kind)
    if reader is None:
        errors["kind"] = [f"Unknown kind; use one of {', '.join(SOURCE_KINDS)}."]
    else:
        errors.update(reader.definition_errors(source))
    if source.priority == 100:
        errors["priority"] = ["100 is the database layer's priority; choose another."]
    if errors:
        raise ValidationError(errors)
    source.full_clean()


@transaction.atomic
def source_create(
    *,
    namespace: Namespace,
    name: str,
    kind: str,
    path: str = "",
    format: str = "",  # noqa: A002 - the field's name
    prefix: str = "",
    priority: int | None = None,
    enabled: bool = True,
    reload: bool = True,
    allow_empty: bool = False,
    actor: str | ConfigActor,
) -> Source:
    """Define a source (not loaded yet: call `source_reload` or wait for the beat task); operators only."""
    who = as_actor(actor)
    require_operator(who, "Defining a config source")
    require_namespace(who, namespace.name)
    source = Source(
        namespace=namespace,
        name=name,
        kind=kind,
        path=path or "",
        format=format or "",
        prefix=prefix or "",
        priority=priority if priority is not None else DEFAULT_PRIORITY.get(kind, 200),
        enabled=enabled,
        reload=reload,
        allow_empty=allow_empty,
    )
    _validate(source)
    source.save()
    emit("config.source_created", subject=namespace.name, data={"source": name, "kind": kind}, actor=who.name)
    return source


def source_update(*, source: Source, actor: str | ConfigActor, **fields: Any) -> Source:
    """Change a source (operators only); disabling removes its layer's values (one revision), re-enabling
    reloads it."""
    who = as_actor(actor)
    require_operator(who, "Changing a config source")
    require_namespace(who, source.namespace.name)
    was_enabled = source.enabled
    with transaction.atomic():
        for name, value in fields.items():
            setattr(source, name, value)
        _validate(source)
        source.last_hash = ""  # definition changed: read it again on the next reload
        source.save()
        emit(
            "config.source_updated",
            subject=source.namespace.name,
            data={"source": source.name, "fields": sorted(fields)},
            actor=who.name,
        )
        if was_enabled and not source.enabled:
            config_changes_apply(
                namespace=source.namespace,
                changes=[],
                source=source,
                actor=who,
                origin=f"source:{source.name}",
                message="Source disabled",
                replace_layer=True,
            )
    if source.enabled:
        source_reload(source=source, force=True, actor=who)
    return source


@transaction.atomic
def source_delete(*, source: Source, actor: str | ConfigActor) -> None:
    """Remove a source and its layer's values, as one revision (operators only)."""
    who = as_actor(actor)
    require_operator(who, "Removing a config source")
    config_changes_apply(
        namespace=source.namespace,
        changes=[],
        source=source,
        actor=who,
        origin=f"source:{source.name}",
        message="Source removed",
        replace_layer=True,
    )
    name, namespace = source.name, source.namespace.name
    source.delete()
    emit("config.source_deleted", subject=namespace, data={"source": name}, actor=who.name)


def source_document(source: Source, raw: bytes | None = None) -> dict[str, Any]:
    """The flat keys a source holds now; `SourceReadError` or `ValidationError` when it cannot be read."""
    reader: SourceReader = SOURCE_KINDS[source.kind](source)
    raw = reader.read() if raw is None else raw
    parsed = reader.parse(raw)
    if isinstance(parsed, str):
        return parse_config_text(namespace=source.namespace, text=parsed, fmt=reader.format, limit=conf.max_entries())  # type: ignore[attr-defined]
    try:
        return flatten(parsed, object_keys=object_keys(source.namespace), limit=conf.max_entries())
    except FormatError as exc:
        raise SourceReadError(str(exc)) from None


def _error_text(exc: Exception) -> str:
    if isinstance(exc, ValidationError) and hasattr(exc, "error_dict"):
        return "; ".join(f"{key}: {' '.join(messages)}" for key, messages in sorted(exc.message_dict.items()))[:4000]
    if isinstance(exc, ValidationError):
        return "; ".join(exc.messages)[:4000]
    return str(exc)[:4000]


def _record_failure(source: Source, digest: str, error: str, actor: str) -> None:
    """Keep the layer as it is; note why on the source and in a `config.source_failed` event."""
    with transaction.atomic():
        Source.objects.filter(pk=source.pk).update(last_hash=digest, last_error=error)
        emit(
            "config.source_failed",
            subject=source.namespace.name,
            data={"namespace": source.namespace.name, "source": source.name, "error": error[:1000]},
            actor=actor,
        )
    source.last_hash, source.last_error = digest, error
    logger.warning("Config source %s/%s not applied: %s", source.namespace.name, source.name, error)


def source_reload(*, source: Source, force: bool = False, actor: str | ConfigActor = "system") -> ReloadResult:
    """Read a source and apply it when it changed; on any problem apply nothing and record why.

    `ChangeNotAllowed` propagates (the source is fine, the actor may not apply it) and records nothing.
    """
    who = as_actor(actor)
    require_namespace(who, source.namespace.name)
    if not source.enabled:
        return ReloadResult("skipped")
    reader = SOURCE_KINDS[source.kind](source)
    try:
        raw = reader.read()
    except SourceReadError as exc:
        digest = "error:" + reader.digest(str(exc).encode())[:58]
        if digest != source.last_hash or force:
            _record_failure(source, digest, str(exc), who.name)
        return ReloadResult("failed", error=str(exc))
    digest = reader.digest(raw)
    if digest == source.last_hash and not force:
        return ReloadResult("unchanged")
    try:
        flat = source_document(source, raw)
        if not flat and not source.allow_empty:
            raise SourceReadError(EMPTY_SOURCE_MESSAGE)
        with transaction.atomic():
            revision = config_changes_apply(
                namespace=source.namespace,
                changes=[EntryChange(key=key, value=value) for key, value in flat.items()],
                source=source,
                actor=who,
                origin=f"source:{source.name}",
                message=f"Reload of {source.layer}",
                replace_layer=True,
            )
            Source.objects.filter(pk=source.pk).update(last_hash=digest, last_error="", last_loaded_at=timezone.now())
    except (SourceReadError, ValidationError) as exc:
        error = _error_text(exc)
        _record_failure(source, digest, error, who.name)
        return ReloadResult("failed", error=error)
    source.last_hash, source.last_error = digest, ""
    return ReloadResult("applied" if revision else "unchanged", revision=revision.number if revision else None)


def sources_reload(
    *, namespace: str | None = None, force: bool = False, actor: str = "system"
) -> dict[str, ReloadResult]:
    """Reload every enabled source with reload on (optionally of one namespace); results by `ns/source`."""
    qs = Source.objects.filter(enabled=True).select_related("namespace")
    qs = qs.filter(namespace__name=namespace) if namespace else qs.filter(reload=True)
    results = {}
    for source in qs.order_by("namespace__name", "name"):
        try:
            results[f"{source.namespace.name}/{source.name}"] = source_reload(source=source, force=force, actor=actor)
        except Exception as exc:  # noqa: BLE001 - one broken source must not stop the others
            logger.exception("Reload of %s failed unexpectedly", source)
            results[f"{source.namespace.name}/{source.name}"] = ReloadResult("failed", error=str(exc))
    return results
