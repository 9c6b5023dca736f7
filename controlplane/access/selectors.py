"""Reads for API keys, including the lookup that authenticates a presented key."""

from __future__ import annotations

from enum import StrEnum

from django.db.models import QuerySet
from rest_framework_api_key.crypto import KeyGenerator

from controlplane.access import keycache
from controlplane.access.models import APIKey

_generator = KeyGenerator()


class KeyRejection(StrEnum):
    """Why a presented key was refused (never shown to clients beyond a generic message)."""

    MALFORMED = "malformed"
    UNKNOWN = "unknown"
    REVOKED = "revoked"
    EXPIRED = "expired"


def api_key_authenticate(raw_key: str) -> tuple[APIKey | None, KeyRejection | None]:
    """Find the key for `raw_key` (`prefix.secret`) and verify it; one indexed query by prefix."""
    prefix, dot, secret = raw_key.partition(".")
    if not dot or not prefix or not secret or len(prefix) > 8 or len(raw_key) > 200:
        return None, KeyRejection.MALFORMED
    key = keycache.lookup(prefix, _load_key)
    if key is None or not _generator.verify(raw_key, key.hashed_key):
        return None, KeyRejection.UNKNOWN
    if key.revoked:
        return None, KeyRejection.REVOKED
    if key.is_expired:
        return None, KeyRejection.EXPIRED
    return key, None


def _load_key(prefix: str) -> APIKey | None:
    return APIKey.objects.filter(prefix=prefix).first()


def api_key_list() -> QuerySet[APIKey]:
    """All keys, newest first."""
    return APIKey.objects.select_related("created_by").order_by("-created")
