"""Writes for API keys: create (returns the plaintext once), update, revoke, delete.

Each write emits its event here; invalidating every process's cached copy is the data layer's job
(`querysets`, `signals`), so no write path — admin, API, command, shell — can skip it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from controlplane.access.models import APIKey
from controlplane.access.validators import api_key_fields_validate
from controlplane.events.services import emit

_UNSET: Any = object()


@transaction.atomic
def api_key_create(
    *,
    name: str,
    scopes: list[str],
    rate: str = "",
    namespaces: list[str] | None = None,
    expires_at: datetime | None = None,
    created_by=None,  # type: ignore[no-untyped-def]
    actor: str = "system",
) -> tuple[APIKey, str]:
    """Create a key and return it with its plaintext, which is never stored and never shown again."""
    namespaces = namespaces or []
    api_key_fields_validate(
        name=name, scopes=scopes, rate=rate, namespaces=namespaces, expires_at=expires_at, future_expiry=True
    )
    key, plaintext = APIKey.objects.create_key(
        name=name.strip(),
        scopes=sorted(set(scopes)),
        rate=rate,
        namespaces=sorted(set(namespaces)),
        expiry_date=expires_at,
        created_by=created_by,
    )
    emit("apikey.created", subject=key.prefix, data={"name": key.name, "scopes": key.scopes}, actor=actor)
    return key, plaintext


@transaction.atomic
def api_key_update(
    key: APIKey,
    *,
    name: str = _UNSET,
    scopes: list[str] = _UNSET,
    rate: str = _UNSET,
    namespaces: list[str] = _UNSET,
    expires_at: datetime | None = _UNSET,
    actor: str = "system",
) -> APIKey:
    """Change what a key may do (name, scopes, rate, namespaces, expiry); binds every process on return.

    Only the fields given change. A past expiry expires the key at once. Revocation is one-way and has
    its own service.
    """
    given = {
        "name": name,
        "scopes": scopes,
        "rate": rate,
        "namespaces": namespaces,
        "expires_at": expires_at,
    }
    given = {field: value for field, value in given.items() if value is not _UNSET}
    api_key_fields_validate(**{field: value for field, value in given.items() if field != "expires_at"})
    new = {
        "name": given["name"].strip() if "name" in given else key.name,
        "scopes": sorted(set(given["scopes"])) if "scopes" in given else key.scopes,
        "rate": given.get("rate", key.rate),
        "namespaces": sorted(set(given["namespaces"])) if "namespaces" in given else key.namespaces,
        "expiry_date": given.get("expires_at", key.expiry_date),
    }
    changed = [field for field, value in new.items() if getattr(key, field) != value]
    if not changed:
        return key
    for field in changed:
        setattr(key, field, new[field])
    key.save(update_fields=changed)
    data: dict[str, Any] = {"name": key.name, "changed": changed}
    for field in ("scopes", "rate", "namespaces"):
        if field in changed:
            data[field] = getattr(key, field)
    if "expiry_date" in changed:
        data["expires_at"] = key.expiry_date.isoformat() if key.expiry_date else None
    emit("apikey.updated", subject=key.prefix, data=data, actor=actor)
    return key


@transaction.atomic
def api_key_revoke(key: APIKey, *, actor: str = "system") -> APIKey:
    """Revoke a key; every process refuses it from the next request on (before this returns)."""
    if key.revoked:
        return key
    key.revoked = True
    key.revoked_at = timezone.now()
    key.save(update_fields=["revoked", "revoked_at"])
    emit("apikey.revoked", subject=key.prefix, data={"name": key.name}, actor=actor)
    return key


@transaction.atomic
def api_key_delete(key: APIKey, *, actor: str = "system") -> None:
    """Delete a key row; every process refuses it from the next request on (before this returns)."""
    prefix, name = key.prefix, key.name
    key.delete()
    emit("apikey.deleted", subject=prefix, data={"name": name}, actor=actor)
