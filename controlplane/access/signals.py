"""The one receiver that turns a saved or deleted key row into a cross-process invalidation.

Django's `post_save` / `post_delete` cover `Model.save()`, `Model.delete()` and queryset deletes (the
deletion collector sends `post_delete` per row when a receiver exists); `APIKeyQuerySet.update` covers
the signal-less update. No logic beyond that lives here: events are emitted by the services.
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from controlplane.access import keycache
from controlplane.access.models import APIKey
from controlplane.access.querysets import BOOKKEEPING_FIELDS


@receiver(post_save, sender=APIKey, dispatch_uid="access.apikey.saved")
def _key_saved(sender: type[APIKey], instance: APIKey, update_fields: frozenset[str] | None = None, **_: Any) -> None:
    if update_fields is not None and set(update_fields) <= BOOKKEEPING_FIELDS:
        return
    keycache.invalidate_on_commit()


@receiver(post_delete, sender=APIKey, dispatch_uid="access.apikey.deleted")
def _key_deleted(sender: type[APIKey], instance: APIKey, **_: Any) -> None:
    keycache.invalidate_on_commit()
