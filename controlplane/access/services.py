"""Writes for API keys: create (returns the plaintext once), revoke."""

from __future__ import annotations

from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from controlplane.access import keycache
from controlplane.access.models import APIKey
from controlplane.access.scopes import ALL_SCOPES
from controlplane.env import RATE_RE
from controlplane.events.services import emit


def _validate(*, name: str, scopes: list[str], rate: str, namespaces: list[str], expires_at: datetime | None) -> None:
    errors: dict[str, list[str]] = {}
    if not name or not name.strip():
        errors["name"] = ["A name is required."]
    if not isinstance(scopes, list) or not scopes:
        errors["scopes"] = ["Give at least one scope."]
    else:
        unknown = sorted({s for s in scopes if s not in ALL_SCOPES})
        if unknown:
            errors["scopes"] = [f"Unknown scope(s): {', '.join(unknown)}. Known: {', '.join(ALL_SCOPES)}."]
    if rate and not RATE_RE.match(rate):
        errors["rate"] = ["A rate looks like 600/m, 100/h or 10/s."]
    if not isinstance(namespaces, list) or not all(isinstance(n, str) and n for n in namespaces):
        errors["namespaces"] = ["A list of namespace names."]
    if expires_at is not None and expires_at <= timezone.now():
        errors["expires_at"] = ["The expiry must be in the future."]
    if errors:
        raise ValidationError(errors)


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
    _validate(name=name, scopes=scopes, rate=rate, namespaces=namespaces, expires_at=expires_at)
    key, plaintext = APIKey.objects.create_key(
        name=name.strip(),
        scopes=sorted(set(scopes)),
        rate=rate,
        namespaces=namespaces,
        expiry_date=expires_at,
        created_by=created_by,
    )
    keycache.invalidate_on_commit()
    emit("apikey.created", subject=key.prefix, data={"name": key.name, "scopes": key.scopes}, actor=actor)
    return key, plaintext


@transaction.atomic
def api_key_revoke(key: APIKey, *, actor: str = "system") -> APIKey:
    """Revoke a key; every process refuses it from the next request on (keys are read per request)."""
    if key.revoked:
        return key
    key.revoked = True
    key.revoked_at = timezone.now()
    key.save(update_fields=["revoked", "revoked_at"])
    keycache.invalidate_on_commit()
    emit("apikey.revoked", subject=key.prefix, data={"name": key.name}, actor=actor)
    return key


@transaction.atomic
def api_key_rename(key: APIKey, *, name: str, actor: str = "system") -> APIKey:
    """Change a key's display name (the only mutable field besides revocation)."""
    if not name or not name.strip():
        raise ValidationError({"name": ["A name is required."]})
    key.name = name.strip()
    key.save(update_fields=["name"])
    keycache.invalidate_on_commit()
    emit("apikey.renamed", subject=key.prefix, data={"name": key.name}, actor=actor)
    return key
