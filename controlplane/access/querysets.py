"""The API-key manager and queryset: every write to a key row reaches every process, whoever makes it.

Key records are cached per process (`keycache`), so a write that forgot to invalidate would leave a
revoked or deleted key working in other processes with no end. Invalidation therefore hangs off the
data layer rather than off each caller:

- `Model.save()` and `Model.delete()` (and a queryset delete, which Django runs through the same
  collector) send `post_save` / `post_delete`; one receiver (`controlplane.access.signals`) invalidates.
- `QuerySet.update()` sends no signal, so it is overridden here; `bulk_update` goes through it.

Invalidation is registered with `transaction.on_commit`, once per transaction however many rows change
(see `keycache.invalidate_on_commit`). The one write that is *not* a key change is the `last_used_at`
bookkeeping of authentication: it would otherwise bump the generation once a minute per busy key.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from rest_framework_api_key.models import BaseAPIKeyManager

from controlplane.access import keycache

# Fields whose change does not alter what a key may do: writing only these does not invalidate.
BOOKKEEPING_FIELDS = frozenset({"last_used_at"})


class APIKeyQuerySet(models.QuerySet):
    """Queryset whose signal-less writes still invalidate every process's cached key records on commit."""

    def update(self, **kwargs: Any) -> int:
        rows = super().update(**kwargs)
        if rows and not set(kwargs) <= BOOKKEEPING_FIELDS:
            keycache.invalidate_on_commit()
        return rows

    update.alters_data = True  # type: ignore[attr-defined]


class APIKeyManager(BaseAPIKeyManager.from_queryset(APIKeyQuerySet)):  # type: ignore[misc]
    """The library's key manager (generation, hashing) on `APIKeyQuerySet`, with the prefix as primary key."""

    def assign_key(self, obj: Any) -> str:
        key = super().assign_key(obj)
        # The library makes the primary key "<prefix>.<hash>", which then shows up in admin URLs, admin
        # log entries and form values. The prefix is unique and public; the hash stays in `hashed_key`.
        obj.id = obj.prefix
        return key
