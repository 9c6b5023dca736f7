"""DRF authentication by API key: `Authorization: Api-Key <key>` or `X-Api-Key: <key>`."""

from __future__ import annotations

from datetime import timedelta

from django.http import HttpRequest
from django.utils import timezone
from rest_framework import authentication, exceptions

from controlplane.access.models import APIKey
from controlplane.access.selectors import KeyRejection, api_key_authenticate
from controlplane.observability.context import set_key_prefix

KEYWORD = "api-key"
# last_used_at is a convenience for operators; writing it at most once a minute per key keeps the
# hot path free of a database write per request.
LAST_USED_RESOLUTION = timedelta(seconds=60)

_MESSAGES = {
    KeyRejection.MALFORMED: "The API key is malformed.",
    KeyRejection.UNKNOWN: "The API key is not valid.",
    KeyRejection.REVOKED: "The API key has been revoked.",
    KeyRejection.EXPIRED: "The API key has expired.",
}


class ApiKeyUser:
    """What `request.user` is for a request authenticated by an API key."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False

    def __init__(self, key: APIKey) -> None:
        self.key = key
        self.username = f"key:{key.prefix}"
        self.pk = None

    def __str__(self) -> str:
        return self.username


def raw_key_from(request: HttpRequest) -> str | None:
    """The key presented on a request, from Authorization or X-Api-Key; None when absent."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header:
        keyword, _, value = header.partition(" ")
        if keyword.lower() == KEYWORD:
            return value.strip() or ""
        return ""  # another scheme: treat as a malformed key, not as anonymous
    value = request.META.get("HTTP_X_API_KEY")
    if value is not None:
        return value.strip()
    return None


def authenticate_key(request: HttpRequest) -> APIKey:
    """Authenticate the key on `request` or raise 401; records the prefix for logs."""
    raw = raw_key_from(request)
    if raw is None:
        raise exceptions.NotAuthenticated("An API key is required (Authorization: Api-Key <key>).")
    key, rejection = api_key_authenticate(raw) if raw else (None, KeyRejection.MALFORMED)
    if key is None:
        raise exceptions.AuthenticationFailed(_MESSAGES[rejection or KeyRejection.UNKNOWN])
    request.api_key_prefix = key.prefix  # type: ignore[attr-defined]
    set_key_prefix(key.prefix)
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        APIKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Authenticates API requests by API key; anything else under /api/v1/ is 401."""

    def authenticate(self, request):  # type: ignore[no-untyped-def]
        key = authenticate_key(request._request)
        return ApiKeyUser(key), key

    def authenticate_header(self, request) -> str:  # type: ignore[no-untyped-def]
        return 'Api-Key realm="controlplane"'
