"""The one rule for what a key may hold, shared by the API, the admin forms and the management commands."""

from __future__ import annotations

import re
from datetime import datetime

from django.core.exceptions import ValidationError
from django.utils import timezone

from controlplane.access.scopes import ALL_SCOPES
from controlplane.env import RATE_RE

MAX_RATE_COUNT = 1_000_000_000
MAX_NAMESPACES = 200
RATE_HELP = "A rate looks like 600/m, 100/h or 10/s: a positive count per period (1000/5m works too)."


def rate_errors(rate: str) -> list[str]:
    """Why `rate` is not a usable key rate ([] when it is; blank means the default rate)."""
    if not rate:
        return []
    match = RATE_RE.match(rate)
    if match is None:
        return [RATE_HELP]
    count, multiplier = int(match.group(1)), match.group(2)
    # 0/m would refuse every request while looking like a limit; 1/0m divides by zero in the counter.
    if not 1 <= count <= MAX_RATE_COUNT or (multiplier and int(multiplier) < 1):
        return [RATE_HELP]
    return []


def namespace_errors(namespaces: object) -> list[str]:
    """Why `namespaces` is not a list of possible config namespace names ([] when it is)."""
    # A limit must name something that can exist, under the config store's own rule for names, or it
    # reads as a restriction while matching nothing (or, like "../x", hints at a path it is not).
    from configstore.models import NAMESPACE_PATTERN

    if not isinstance(namespaces, list) or not all(isinstance(name, str) for name in namespaces):
        return ["A list of namespace names."]
    if len(namespaces) > MAX_NAMESPACES:
        return [f"At most {MAX_NAMESPACES} namespaces."]
    bad = [name for name in namespaces if not re.match(NAMESPACE_PATTERN, name)]
    if bad:
        shown = ", ".join(repr(name[:70]) for name in bad[:5])
        return [f"Not a namespace name: {shown}. Names are lower-case letters, digits, - and _."]
    return []


def api_key_fields_validate(
    *,
    name: str | None = None,
    scopes: list[str] | None = None,
    rate: str | None = None,
    namespaces: list[str] | None = None,
    expires_at: datetime | None = None,
    future_expiry: bool = False,
) -> None:
    """Raise `ValidationError` (field -> messages) for any given field a key may not hold.

    Fields left as None are not checked (an update of some fields). `future_expiry`: the expiry must be
    in the future (creating a key); an edit may set a past expiry, which expires the key at once.
    """
    errors: dict[str, list[str]] = {}
    if name is not None and not name.strip():
        errors["name"] = ["A name is required."]
    if scopes is not None:
        if not isinstance(scopes, list) or not scopes:
            errors["scopes"] = ["Give at least one scope."]
        else:
            unknown = sorted({str(s) for s in scopes if s not in ALL_SCOPES})
            if unknown:
                errors["scopes"] = [f"Unknown scope(s): {', '.join(unknown)}. Known: {', '.join(ALL_SCOPES)}."]
    if rate is not None and (problems := rate_errors(rate)):
        errors["rate"] = problems
    if namespaces is not None and (problems := namespace_errors(namespaces)):
        errors["namespaces"] = problems
    if future_expiry and expires_at is not None and expires_at <= timezone.now():
        errors["expires_at"] = ["The expiry must be in the future."]
    if errors:
        raise ValidationError(errors)
