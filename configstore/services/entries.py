"""Entry writes built on `config_changes_apply`: one key (set/delete), import of a document, rollback."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from configstore.access import ConfigActor
from configstore.formats import FormatError, flatten, parse_document
from configstore.models import Entry, Namespace, Revision, Rule
from configstore.selectors import layer_state
from configstore.services.changes import (
    EntryChange,
    _State,
    _state_of,
    announces_rejections,
    config_changes_apply,
)
from controlplane.errors import PreconditionFailed

EMPTY_REPLACE_MESSAGE = (
    "The document holds no keys; replacing with it would delete every key. Say so explicitly (allow_empty=true)."
)


def config_entry_set(
    *,
    namespace: Namespace,
    key: str,
    value: Any,
    actor: str | ConfigActor,
    secret: bool | None = None,
    description: str | None = None,
    expected_revision: int | None = None,
    origin: str = "api",
    dry_run: bool = False,
) -> Revision | None:
    """Set one database-layer entry (CAS when `expected_revision` is given; `dry_run` only checks)."""
    expected = {key: expected_revision} if expected_revision is not None else None
    change = EntryChange(key=key, value=value, secret=secret, description=description)
    return config_changes_apply(
        namespace=namespace, changes=[change], actor=actor, origin=origin, expected=expected, dry_run=dry_run
    )


def config_entry_delete(
    *,
    namespace: Namespace,
    key: str,
    actor: str | ConfigActor,
    expected_revision: int | None = None,
    origin: str = "api",
) -> Revision | None:
    """Delete one database-layer entry (CAS when `expected_revision` is given)."""
    expected = {key: expected_revision} if expected_revision is not None else None
    change = EntryChange(key=key, action="delete")
    return config_changes_apply(namespace=namespace, changes=[change], actor=actor, origin=origin, expected=expected)


def object_keys(namespace: Namespace) -> set[str]:
    """Keys whose mappings are values, not sections: existing keys and keys ruled to be objects."""
    keys = set(Entry.objects.filter(namespace=namespace).values_list("key", flat=True))
    for rule in Rule.objects.filter(namespace=namespace, kind__in=["type", "json_schema"]):
        if rule.kind == "json_schema" or rule.params.get("type") == "object":
            keys.add(rule.key)
    return keys


def parse_config_text(*, namespace: Namespace, text: str, fmt: str, limit: int) -> dict[str, Any]:
    """Parse an import or source document into flat keys; `ValidationError` under `body` on failure."""
    try:
        return flatten(parse_document(text, fmt), object_keys=object_keys(namespace), limit=limit)
    except FormatError as exc:
        raise ValidationError({"body": [str(exc)]}) from None


@announces_rejections(origin="import")
def config_import(
    *,
    namespace: Namespace,
    text: str,
    fmt: str,
    actor: str | ConfigActor,
    replace: bool = False,
    allow_empty: bool = False,
    message: str = "",
    expected_revision: int | None = None,
) -> Revision | None:
    """Import a document into the database layer, all or nothing; None when it changes nothing.

    With `replace`, an empty document would delete every key of the layer: that needs `allow_empty` too
    (a truncated upload or an empty body must not wipe a namespace by accident).
    """
    from configstore import conf

    flat = parse_config_text(namespace=namespace, text=text, fmt=fmt, limit=conf.max_entries())
    if replace and not flat and not allow_empty:
        raise ValidationError({"body": [EMPTY_REPLACE_MESSAGE]})
    with transaction.atomic():
        if expected_revision is not None:
            current = Namespace.objects.select_for_update().get(pk=namespace.pk).revision
            if current != expected_revision:
                raise PreconditionFailed(f"The namespace is at revision {current}, not {expected_revision}.")
        changes = [EntryChange(key=key, value=value) for key, value in flat.items()]
        return config_changes_apply(
            namespace=namespace,
            changes=changes,
            actor=actor,
            origin="import",
            message=message or f"Import ({fmt})",
            replace_layer=replace,
        )


@announces_rejections(origin="rollback")
def config_rollback(
    *, namespace: Namespace, to_revision: int, actor: str | ConfigActor, message: str = ""
) -> Revision | None:
    """Restore the database layer as it was at `to_revision`, as a new revision (history is never rewritten).

    Source layers are owned by their files and environment; a rollback leaves them alone.
    """
    with transaction.atomic():
        namespace = Namespace.objects.select_for_update().get(pk=namespace.pk)
        if not 0 <= to_revision <= namespace.revision:
            raise ValidationError({"revision": [f"Give a revision between 0 and {namespace.revision}."]})
        state = {key: _state_of(e) for key, e in layer_state(namespace, None).items()}
        for revision in Revision.objects.filter(namespace=namespace, number__gt=to_revision).order_by("-number"):
            for change in reversed(revision.changes):
                if change.get("layer") != "database":
                    continue
                if change["action"] == "create":
                    state.pop(change["key"], None)
                    continue
                description = change.get(
                    "old_description", state[change["key"]].description if change["key"] in state else ""
                )
                if change.get("old_secret"):
                    state[change["key"]] = _State(None, True, change["old_token"], description)
                else:
                    state[change["key"]] = _State(change["old"], False, "", description)
        changes = [
            EntryChange(
                key=k, value=s.value, secret=s.secret, description=s.description, token=s.token if s.secret else None
            )
            for k, s in state.items()
        ]
        return config_changes_apply(
            namespace=namespace,
            changes=changes,
            actor=actor,
            origin="rollback",
            message=message or f"Roll back to revision {to_revision}",
            replace_layer=True,
        )
