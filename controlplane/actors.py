"""Who did something, as a short string for events and revisions."""

from __future__ import annotations

from typing import Any


def actor_from_request(request: Any) -> str:
    """`key:<prefix>` for API-key requests, `user:<username>` for admin users, else `anonymous`."""
    auth = getattr(request, "auth", None)
    prefix = getattr(auth, "prefix", None)
    if prefix:
        return f"key:{prefix}"
    user = getattr(request, "user", None)
    if user is not None and getattr(user, "is_authenticated", False):
        return f"user:{user.get_username()}" if hasattr(user, "get_username") else str(user)
    return "anonymous"
