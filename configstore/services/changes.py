"""Writes for the config store. Every change to entries goes through `config_changes_apply`.

The admin, the API, imports, source reloads and rollbacks all build a list of `EntryChange` and hand it
here: the whole set is validated (keys, values, rules on the written values, `required` rules and
key/section conflicts on the resulting effective config), then applied in one transaction as one new
revision that emits `config.changed` and, on commit, the `config_changed` signal and the watch
notification. Any error applies nothing and reports every problem at once.

Authorization is decided here too, once for the whole set (see `configstore.access`): the actor's
namespace limits, and `config:secrets` for any change that creates, alters, deletes or restores a secret
entry or touches a key that is secret now. The secrets check runs before any submitted value is compared
with a stored secret, so a caller without the scope gets the same answer whatever value it guessed.
"""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from configstore import notify, revcache
from configstore.access import ChangeNotAllowed, ConfigActor, as_actor, require_namespace, require_secrets
from configstore.crypto import encrypt_value
from configstore.metrics import CONFIG_REJECTED, CONFIG_REVISIONS, origin_kind
from configstore.models import KEY_PATTERN, MASK, RESERVED_KEYS, Entry, Namespace, Revision, Source
from configstore.selectors import compute_effective, layer_priority, layer_state, namespace_ruleset
from configstore.signals import config_changed, config_write_rejected
from controlplane.errors import PreconditionFailed
from controlplane.events.services import emit
from controlplane.jsonbounds import json_depth_exceeds

logger = logging.getLogger("configstore")
_KEY_RE = re.compile(KEY_PATTERN)
MAX_VALUE_BYTES = 256 * 1024
EVENT_KEYS_MAX = 1000
_Apply = TypeVar("_Apply", bound=Callable[..., Any])
# How many decorated writes this call stack is inside (see `announces_rejections`).
_REJECTION_DEPTH: contextvars.ContextVar[int] = contextvars.ContextVar("config_rejection_depth", default=0)
REJECTIONS: tuple[tuple[type[Exception], str], ...] = (
    (PreconditionFailed, "conflict"),
    (ChangeNotAllowed, "forbidden"),
    (ValidationError, "invalid"),
)


def announces_rejections(*, origin: str | None = None) -> Callable[[_Apply], _Apply]:
    """Send `config_write_rejected` when the decorated write refuses its change set, then re-raise.

    Sent by the outermost decorated write only (an import calls `config_changes_apply` inside its own
    transaction): by then every transaction of the write has rolled back, so a receiver may record the
    refusal in the database without its record vanishing with it, and a refusal is announced once.
    `origin` names writes that take none as an argument (import).
    """

    def decorate(write: _Apply) -> _Apply:
        @functools.wraps(write)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            depth = _REJECTION_DEPTH.get()
            token = _REJECTION_DEPTH.set(depth + 1)
            try:
                return write(*args, **kwargs)
            except Exception as exc:
                reason = next((name for kind, name in REJECTIONS if isinstance(exc, kind)), None)
                if reason is not None and depth == 0:
                    namespace = kwargs.get("namespace")
                    config_write_rejected.send(
                        sender=Namespace,
                        namespace=getattr(namespace, "name", str(namespace)),
                        reason=reason,
                        origin=str(kwargs.get("origin") or origin or ""),
                    )
                raise
            finally:
                _REJECTION_DEPTH.reset(token)

        return wrapper  # type: ignore[return-value]

    return decorate


@dataclass
class EntryChange:
    """One requested change to a key in one layer.

    `secret`/`description` of None keep what the entry has. `token` sets an already encrypted secret
    (rollback); a `value` equal to the mask on an existing secret keeps its stored value (re-import of a
    masked export).
    """

    key: str
    action: Literal["set", "delete"] = "set"
    value: Any = None
    secret: bool | None = None
    description: str | None = None
    token: str | None = None


@dataclass
class _State:
    value: Any
    secret: bool
    token: str
    description: str


def key_errors(key: Any) -> list[str]:
    """Problems with a key's syntax (dotted lower-case segments, not a reserved API path)."""
    if not isinstance(key, str) or not _KEY_RE.match(key):
        return ["Keys are dotted lower-case segments of a-z, 0-9 and _ (like db.port)."]
    if len(key) > 255:
        return ["Keys are at most 255 characters."]
    if key in RESERVED_KEYS:
        return [f"{key!r} is reserved for the API's own paths; use it only as a section (like {key}.x)."]
    return []


def _value_errors(value: Any) -> list[str]:
    try:
        encoded = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return ["The value must be JSON (no NaN or Infinity)."]
    if len(encoded) > MAX_VALUE_BYTES:
        return [f"The value is larger than {MAX_VALUE_BYTES} bytes as JSON."]
    if json_depth_exceeds(value, 32):
        return ["The value nests deeper than 32 levels."]
    return []


def _state_of(entry: Entry) -> _State:
    return _State(entry.value, entry.secret, entry.encrypted_value, entry.description)


def _plain(state: _State) -> Any:
    if state.secret:
        from configstore.crypto import decrypt_value

        return decrypt_value(state.token)
    return state.value


def _record(key: str, layer: str, old: _State | None, new: _State | None) -> dict[str, Any]:
    """The history item for one key change; secret values are masked, their tokens kept for rollback."""
    action = "create" if old is None else "delete" if new is None else "update"
    item: dict[str, Any] = {"key": key, "layer": layer, "action": action}
    for label, state in (("old", old), ("new", new)):
        if state is None:
            item[label] = None
            continue
        item[label] = MASK if state.secret else state.value
        item[f"{label}_secret"] = state.secret
        if state.secret:
            item[f"{label}_token"] = state.token
    if old is not None and new is not None and old.description != new.description:
        item["old_description"], item["new_description"] = old.description, new.description
    elif new is not None and old is None and new.description:
        item["new_description"] = new.description
    return item


def _next_state(change: EntryChange, current: _State | None, errors: dict[str, list[str]]) -> _State | None:
    """The state a key takes under `change`; problems go into `errors`."""
    if change.action == "delete":
        return None
    secret = current.secret if change.secret is None and current is not None else bool(change.secret)
    description = change.description if change.description is not None else (current.description if current else "")
    if change.token is not None:
        return _State(None, True, change.token, description)
    if current is not None and current.secret and change.value == MASK:
        if not secret:
            errors.setdefault(change.key, []).append("Give the value to store when the entry stops being secret.")
            return current
        return _State(None, True, current.token, description)
    problems = _value_errors(change.value)
    if problems:
        errors.setdefault(change.key, []).extend(problems)
        return current
    if secret:
        unchanged = current is not None and current.secret and _plain(current) == change.value
        return _State(None, True, current.token if unchanged else encrypt_value(change.value), description)
    return _State(change.value, False, "", description)


def _same(a: _State | None, b: _State | None) -> bool:
    if a is None or b is None:
        return a is b
    return (a.secret, a.description, a.token if a.secret else json.dumps(a.value, sort_keys=True)) == (
        b.secret,
        b.description,
        b.token if b.secret else json.dumps(b.value, sort_keys=True),
    )


def _effective_after(others: list[Entry], source: Source | None, final: dict[str, _State | None]) -> dict[str, Any]:
    """The flat effective config once this layer holds `final` (disabled sources take no part)."""
    flat, _, _ = compute_effective(others)
    if source is not None and not source.enabled:
        return flat
    own_rank = layer_priority(source)
    ranks: dict[str, tuple[int, int, int]] = {}
    for entry in others:
        rank = layer_priority(entry.source)
        if rank > ranks.get(entry.key, (-(10**9), 0, 0)):
            ranks[entry.key] = rank
    for key, state in final.items():
        if state is not None and (key not in ranks or own_rank > ranks[key]):
            flat[key] = _plain(state)
    return flat


def _conflicts(keys: list[str]) -> dict[str, list[str]]:
    """Keys that are also sections of other keys (`db` and `db.port`) cannot both exist."""
    present = set(keys)
    errors: dict[str, list[str]] = {}
    for key in keys:
        parts = key.split(".")
        for i in range(1, len(parts)):
            parent = ".".join(parts[:i])
            if parent in present:
                errors.setdefault(key, []).append(
                    f"{parent!r} is a value, so it cannot also be a section holding {key!r}."
                )
    return errors


def _secret_keys(namespace: Namespace) -> set[str]:
    """Keys that are secret now in any layer of the namespace."""
    return set(Entry.objects.filter(namespace=namespace, secret=True).values_list("key", flat=True))


def _keeps(change: EntryChange, current: Entry | None) -> bool:
    """Whether `change` only keeps this layer's secret as it is (the mask, as a masked export holds it).

    Decided without looking at the stored value; a changed description still shows up as a diff.
    """
    return (
        change.action == "set"
        and change.token is None
        and change.value == MASK
        and change.secret in (None, True)
        and current is not None
        and current.secret
    )


@announces_rejections()
def config_changes_apply(
    *,
    namespace: Namespace,
    changes: list[EntryChange],
    actor: str | ConfigActor,
    origin: str,
    source: Source | None = None,
    message: str = "",
    expected: dict[str, int] | None = None,
    replace_layer: bool = False,
    dry_run: bool = False,
) -> Revision | None:
    """Validate and apply a change set to one layer as one revision; None when it changes nothing.

    `actor` is a `ConfigActor` (API, admin) or a string naming a trusted in-process caller. `expected`
    maps keys to the entry revision the caller saw (0 = absent): compare-and-swap, 412 when stale.
    `replace_layer` deletes the layer's keys the change set does not mention (sources, import with
    replace). `dry_run` checks everything and writes nothing (admin forms validate this way). Raises
    `ChangeNotAllowed` (403) when the actor may not make the change, `ValidationError({key: [messages]})`
    with every problem otherwise, applying nothing.
    """
    who = as_actor(actor)
    layer = "database" if source is None else source.layer
    with transaction.atomic():
        namespace = Namespace.objects.select_for_update().get(pk=namespace.pk)
        require_namespace(who, namespace.name)
        existing = layer_state(namespace, source)
        secret_keys = _secret_keys(namespace) if not who.may_secrets else set()
        # Before any value is compared: a submitted value (or a deletion) for a key that is secret now is
        # refused whatever it is, so "changed": false is no oracle. Keeping a secret as it is (the mask)
        # gets through, and so do stored tokens (rollback), which compare no plain value; both are checked
        # again below as diffs.
        require_secrets(
            who,
            (c.key for c in changes if c.key in secret_keys and c.token is None and not _keeps(c, existing.get(c.key))),
        )
        for key, seen in (expected or {}).items():
            current_revision = existing[key].revision if key in existing else 0
            if current_revision != seen:
                raise PreconditionFailed(
                    f"{key} is at revision {current_revision}, not {seen}; read it again and retry."
                )
        errors: dict[str, list[str]] = {}
        new_states: dict[str, _State | None] = {}
        for change in changes:
            problems = key_errors(change.key)
            if change.action == "set" and problems:
                errors.setdefault(str(change.key), []).extend(problems)
                continue
            base = (
                new_states[change.key]
                if change.key in new_states
                else (_state_of(existing[change.key]) if change.key in existing else None)
            )
            new_states[change.key] = _next_state(change, base, errors)
        if replace_layer:
            for key in existing.keys() - new_states.keys():
                new_states[key] = None
        diffs = {
            key: (_state_of(existing[key]) if key in existing else None, state)
            for key, state in new_states.items()
            if not _same(_state_of(existing[key]) if key in existing else None, state)
        }
        # Deletions (also by replace_layer), restores (rollback tokens), new secrets, secret flags flipped.
        require_secrets(
            who,
            (
                key
                for key, (old, new) in diffs.items()
                if key in secret_keys or (old is not None and old.secret) or (new is not None and new.secret)
            ),
        )
        if not diffs and not errors:
            return None

        # The resulting effective config: the other layers as they are plus this layer after the change.
        others = [
            e
            for e in Entry.objects.active().filter(namespace=namespace).select_related("source")
            if e.source_id != (source.pk if source else None)
        ]
        final = {k: _state_of(e) for k, e in existing.items()}
        final.update(new_states)
        effective = _effective_after(others, source, final)
        errors.update(_conflicts(list(effective)))
        ruleset = namespace_ruleset(namespace)
        written = {k: _plain(s) for k, (_, s) in diffs.items() if s is not None}
        for violation in ruleset.check_values(written) + ruleset.check_required(effective):
            errors.setdefault(violation.key, []).append(
                f"{violation.message} ({violation.kind} rule{f' #{violation.rule_id}' if violation.rule_id else ''})"
            )
        if errors:
            _reject(errors, origin)
        if dry_run:
            return None

        namespace.revision += 1
        number = namespace.revision
        # `.update()` and `bulk_update` skip `auto_now`: every row this change writes gets the same time here.
        now = timezone.now()
        namespace.updated_at = now
        Namespace.objects.filter(pk=namespace.pk).update(revision=number, updated_at=now)
        to_create, to_update, to_delete = [], [], []
        for key, (_old, new) in diffs.items():
            if new is None:
                to_delete.append(existing[key].pk)
                continue
            entry = existing.get(key) or Entry(namespace=namespace, source=source, key=key)
            entry.value, entry.secret, entry.encrypted_value = new.value, new.secret, new.token
            entry.description, entry.revision, entry.updated_by = new.description, number, who.name[:150]
            entry.updated_at = now
            (to_update if entry.pk else to_create).append(entry)
        if to_delete:
            Entry.objects.filter(pk__in=to_delete).delete()
        if to_update:
            Entry.objects.bulk_update(
                to_update,
                ["value", "secret", "encrypted_value", "description", "revision", "updated_by", "updated_at"],
                batch_size=1000,
            )
        if to_create:
            _insert_entries(to_create)
        revision = Revision.objects.create(
            namespace=namespace,
            number=number,
            actor=who.name[:150],
            origin=origin[:100],
            message=message[:500],
            changes=[_record(key, layer, old, new) for key, (old, new) in sorted(diffs.items())],
        )
        keys = sorted(diffs)
        emit(
            "config.changed",
            subject=namespace.name,
            data={
                "namespace": namespace.name,
                "revision": number,
                "keys": keys[:EVENT_KEYS_MAX],
                "key_count": len(keys),
                "origin": origin,
            },
            actor=who.name,
        )
        name, namespace_id = namespace.name, namespace.pk
        transaction.on_commit(lambda: _after_commit(name, namespace_id, number, keys, origin))
    return revision


_COPY_COLUMNS = (
    "namespace_id",
    "source_id",
    "key",
    "value",
    "encrypted_value",
    "secret",
    "description",
    "revision",
    "updated_by",
    "updated_at",
)


def _insert_entries(entries: list[Entry]) -> None:
    """Insert new entries; on PostgreSQL with COPY, which makes a 10,000-key import several times faster."""
    if connection.vendor != "postgresql" or len(entries) < 500:
        Entry.objects.bulk_create(entries, batch_size=1000)
        return
    from psycopg.types.json import Jsonb

    table = Entry._meta.db_table
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {table} ({', '.join(_COPY_COLUMNS)}) FROM STDIN") as copy,
    ):
        for e in entries:
            value = None if e.value is None and e.secret else Jsonb(e.value)
            copy.write_row(
                (
                    e.namespace_id,
                    e.source_id,
                    e.key,
                    value,
                    e.encrypted_value,
                    e.secret,
                    e.description,
                    e.revision,
                    e.updated_by,
                    e.updated_at or timezone.now(),
                )
            )


def _reject(errors: dict[str, list[str]], origin: str) -> None:
    CONFIG_REJECTED.labels(origin_kind(origin)).inc()
    raise ValidationError(errors)


def _after_commit(namespace: str, namespace_id: int, revision: int, keys: list[str], origin: str) -> None:
    CONFIG_REVISIONS.labels(origin_kind(origin)).inc()
    if revcache.enabled():
        revcache.store(namespace, namespace_id, revision)
        revcache.barrier()  # returns once every web process reads this revision
    config_changed.send(sender=Namespace, namespace=namespace, revision=revision, keys=keys)
    notify.publish(namespace, revision, namespace_id)
