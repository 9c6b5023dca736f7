"""Reads for the config store: effective config (cached per revision), entries by layer, rules, history.

The effective value of a key is the one from the highest-priority layer defining it: sources carry their
own priority (defaults env 300 > file 200), the database layer (admin and API writes) is 100. A process
keeps the last computed snapshot per namespace and reuses it while the namespace revision is unchanged, so
a read costs one indexed query for the revision.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction
from django.db.models import QuerySet
from django.http import Http404

from configstore.crypto import decrypt_value
from configstore.formats import nest
from configstore.models import DATABASE_PRIORITY, MASK, Entry, Namespace, Revision, Rule, Source
from configstore.rules import RuleSet

_snapshots: dict[int, Snapshot] = {}
_rulesets: dict[tuple, tuple[int, RuleSet]] = {}
_lock = threading.Lock()


@dataclass
class Snapshot:
    """The effective config of a namespace at one revision (secret values decrypted)."""

    namespace: str
    revision: int
    flat: dict[str, Any]
    secret_keys: frozenset[str]
    winners: dict[str, str]
    layers: dict[str, list[Entry]] = field(default_factory=dict, repr=False)
    created_at: Any = None
    _bodies: dict[bool, bytes] = field(default_factory=dict, repr=False)
    # Responses derived from this snapshot that views render once per revision (the API's entry bodies).
    rendered: dict[Any, Any] = field(default_factory=dict, repr=False)

    def visible_flat(self, *, reveal: bool) -> dict[str, Any]:
        """The flat config, secret values replaced by the mask unless `reveal`."""
        if reveal or not self.secret_keys:
            return dict(self.flat)
        return {k: (MASK if k in self.secret_keys else v) for k, v in self.flat.items()}

    def nested(self, *, reveal: bool) -> dict[str, Any]:
        return nest(self.visible_flat(reveal=reveal))

    def json_body(self, *, reveal: bool) -> bytes:
        """The nested config as compact JSON, rendered once per snapshot and visibility."""
        body = self._bodies.get(reveal)
        if body is None:
            body = json.dumps(self.nested(reveal=reveal), separators=(",", ":"), ensure_ascii=False).encode()
            self._bodies[reveal] = body
        return body


def namespace_list(*, allowed: list[str] | None = None) -> QuerySet[Namespace]:
    """Namespaces, optionally restricted to the names in `allowed` (an API key's namespaces)."""
    qs = Namespace.objects.order_by("name")
    return qs.filter(name__in=allowed) if allowed else qs


def namespace_get(name: str) -> Namespace:
    """The namespace called `name` or 404."""
    namespace = Namespace.objects.filter(name=name).first()
    if namespace is None:
        raise Http404(f"No namespace {name!r}.")
    return namespace


def layer_priority(source: Source | None) -> tuple[int, int, int]:
    """Sort key for layers: priority, then env over file over database, then newer source."""
    if source is None:
        return (DATABASE_PRIORITY, 0, 0)
    return (source.priority, 2 if source.kind == "env" else 1, source.pk or 0)


def entry_plain_value(entry: Entry) -> Any:
    """An entry's value, decrypted when it is secret."""
    return decrypt_value(entry.encrypted_value) if entry.secret else entry.value


def compute_effective(entries: list[Entry]) -> tuple[dict[str, Any], frozenset[str], dict[str, str]]:
    """Resolve layered entries into (flat values, secret keys, winning layer per key)."""
    best: dict[str, tuple[tuple[int, int, int], Entry]] = {}
    for entry in entries:
        rank = layer_priority(entry.source)
        current = best.get(entry.key)
        if current is None or rank > current[0]:
            best[entry.key] = (rank, entry)
    flat = {key: entry_plain_value(entry) for key, (_, entry) in best.items()}
    secrets = frozenset(key for key, (_, entry) in best.items() if entry.secret)
    winners = {key: entry.layer for key, (_, entry) in best.items()}
    return flat, secrets, winners


def _layer_order(entry: Entry) -> tuple:
    return (entry.source is None or entry.source.enabled, layer_priority(entry.source))


def _build_snapshot(namespace_id: int, name: str, revision: int) -> Snapshot:
    entries = list(Entry.objects.filter(namespace_id=namespace_id).select_related("source"))
    flat, secrets, winners = compute_effective([e for e in entries if e.source is None or e.source.enabled])
    layers: dict[str, list[Entry]] = {}
    for entry in entries:
        layers.setdefault(entry.key, []).append(entry)
    for items in layers.values():
        items.sort(key=_layer_order, reverse=True)
    return Snapshot(namespace=name, revision=revision, flat=flat, secret_keys=secrets, winners=winners, layers=layers)


def _remember(store: dict, key: Any, value: Any) -> None:
    """Cache only what is committed: inside a transaction, wait for the commit (a rollback drops it)."""

    def put() -> None:
        with _lock:
            store[key] = value

    if connection.in_atomic_block:
        transaction.on_commit(put)
    else:
        put()


def _current_revision(namespace: str, cached: tuple[int, int] | None = None) -> tuple[int, int, Any] | None:
    """`(id, revision, created_at or None)`: from the shared cache when there is one, else the database.

    `cached`: the shared cache's value when the caller already read it (the API reads it in the same
    Redis round trip as the rate limit).
    """
    from configstore import revcache

    use_cache = revcache.enabled() and not connection.in_atomic_block
    if use_cache:
        hit = cached if cached is not None else revcache.cached(namespace)
        if hit is not None:
            return (*hit, None)
    row = Namespace.objects.filter(name=namespace).values_list("id", "revision", "created_at").first()
    if row is not None and use_cache:
        revcache.store(namespace, row[0], row[1])
    return row


# Reads of a snapshot racing writes: after this many the last one is kept (a write every few milliseconds).
SNAPSHOT_READ_ATTEMPTS = 5


def config_snapshot(namespace: str, *, cached_revision: tuple[int, int] | None = None) -> Snapshot:
    """The effective config of `namespace` (404 when it does not exist), cached per revision.

    `cached_revision`: `(id, revision)` already read from the shared cache, saving that lookup.
    """
    row = _current_revision(namespace, cached_revision)
    if row is None:
        raise Http404(f"No namespace {namespace!r}.")
    namespace_id, revision, created_at = row
    cached = _snapshots.get(namespace_id)
    if (
        cached is not None
        and cached.revision == revision
        and cached.namespace == namespace
        # SQLite may reuse the id of a deleted namespace: the creation time tells them apart.
        and (created_at is None or cached.created_at is None or cached.created_at == created_at)
    ):
        return cached
    snapshot = _build_snapshot(namespace_id, namespace, revision)
    # The entries are read by later statements than the revision (READ COMMITTED: each its own snapshot), so a
    # write committed in between would label revision N with N+1's values (a watcher was answered "revision 2"
    # with revision 3's value). Entries and revision change in one transaction: the same revision read again
    # after the entries proves they are its own. Otherwise read again at the newer revision.
    for _ in range(SNAPSHOT_READ_ATTEMPTS):
        current = Namespace.objects.filter(pk=namespace_id).values_list("revision", flat=True).first()
        if current is None:
            raise Http404(f"No namespace {namespace!r}.")
        if current == revision:
            break
        revision = current
        snapshot = _build_snapshot(namespace_id, namespace, revision)
    snapshot.created_at = created_at
    _remember(_snapshots, namespace_id, snapshot)
    return snapshot


def config_effective(namespace: str) -> dict[str, Any]:
    """The effective config of `namespace` as nested JSON, secrets decrypted (for trusted callers)."""
    return config_snapshot(namespace).nested(reveal=True)


def config_value(namespace: str, key: str, default: Any = None) -> Any:
    """The effective value of one dotted key, or of a section as a nested mapping, or `default`."""
    flat = config_snapshot(namespace).flat
    if key in flat:
        return flat[key]
    prefix = key + "."
    section = {k[len(prefix) :]: v for k, v in flat.items() if k.startswith(prefix)}
    return nest(section) if section else default


def namespace_revision(namespace: str) -> int | None:
    """The current revision of a namespace, or None when it does not exist."""
    return Namespace.objects.filter(name=namespace).values_list("revision", flat=True).first()


def entry_layers(namespace: Namespace, key: str) -> list[Entry]:
    """Every layer's entry for `key`, winner first (disabled sources last and never winning)."""
    entries = list(Entry.objects.filter(namespace=namespace, key=key).select_related("source"))
    return sorted(entries, key=_layer_order, reverse=True)


def entry_database(namespace: Namespace, key: str) -> Entry | None:
    """The database-layer entry for `key` (what the API and admin write), if any."""
    return Entry.objects.filter(namespace=namespace, source__isnull=True, key=key).first()


def layer_state(namespace: Namespace, source: Source | None) -> dict[str, Entry]:
    """All entries of one layer, by key."""
    return {e.key: e for e in Entry.objects.filter(namespace=namespace, source=source)}


def namespace_ruleset(namespace: Namespace) -> RuleSet:
    """The namespace's rules compiled once per `rules_version` (per process)."""
    cache_key = (namespace.pk, namespace.created_at)
    cached = _rulesets.get(cache_key)
    if cached is not None and cached[0] == namespace.rules_version:
        return cached[1]
    rows = Rule.objects.filter(namespace=namespace).values_list("id", "key", "kind", "params", "message")
    ruleset = RuleSet(rows)
    _remember(_rulesets, cache_key, (namespace.rules_version, ruleset))
    return ruleset


def rule_list(namespace: Namespace) -> QuerySet[Rule]:
    """The namespace's rules in key order."""
    return Rule.objects.filter(namespace=namespace).order_by("key", "id")


def source_list(namespace: Namespace) -> QuerySet[Source]:
    """The namespace's sources, highest priority first."""
    return Source.objects.filter(namespace=namespace).order_by("-priority", "name")


def revision_list(namespace: Namespace) -> QuerySet[Revision]:
    """Revisions, newest first."""
    return Revision.objects.filter(namespace=namespace).order_by("-number")


def public_changes(revision: Revision) -> list[dict[str, Any]]:
    """A revision's changes without the encrypted tokens kept for rollback."""
    return [{k: v for k, v in change.items() if not k.endswith("_token")} for change in revision.changes]


def source_pending_diff(source: Source) -> tuple[list[dict[str, Any]], str]:
    """What reloading `source` now would change in its layer, or why it would be refused: `(diff, error)`.

    Only parsing and reading are checked here; rule violations show when the reload is applied.
    """
    from django.core.exceptions import ValidationError

    from configstore.services.sources import _error_text, source_document
    from configstore.sources import SourceReadError

    try:
        document = source_document(source)
    except (SourceReadError, ValidationError) as exc:
        return [], _error_text(exc)
    current = {key: entry.value for key, entry in layer_state(source.namespace, source).items()}
    diff = []
    for key in sorted(current.keys() | document.keys()):
        old, new = current.get(key), document.get(key)
        if key not in document:
            diff.append({"key": key, "action": "delete", "old": old, "new": None})
        elif key not in current:
            diff.append({"key": key, "action": "create", "old": None, "new": new})
        elif json.dumps(old, sort_keys=True) != json.dumps(new, sort_keys=True):
            diff.append({"key": key, "action": "update", "old": old, "new": new})
    return diff, ""
