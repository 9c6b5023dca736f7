"""Writes of silences: create, update, expire — validated the same way for the dashboard, admin and API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from controlplane.events.services import emit
from monitoring.alerting.matchers import matcher_errors
from monitoring.models import Silence

MAX_COMMENT = 2000


def silence_state(silence: Silence, *, now: datetime | None = None) -> str:
    """pending (starts later), active, or expired."""
    now = now or timezone.now()
    if silence.ends_at <= now:
        return "expired"
    return "pending" if silence.starts_at > now else "active"


def silence_errors(silence: Silence) -> dict[str, list[str]]:
    """Field -> messages for a silence whose fields are wrong or do not fit together."""
    errors: dict[str, list[str]] = {}
    problems = matcher_errors(silence.matchers)
    if problems:
        errors["matchers"] = problems
    for name in ("starts_at", "ends_at"):
        value = getattr(silence, name)
        if not isinstance(value, datetime) or timezone.is_naive(value):
            errors[name] = ["A date and time with a time zone (ISO 8601, e.g. 2026-12-01T10:00:00Z)."]
    if not errors.get("starts_at") and not errors.get("ends_at") and silence.ends_at <= silence.starts_at:
        errors["ends_at"] = ["The end must be after the start."]
    if not (silence.comment or "").strip():
        errors["comment"] = ["Say why the alerts are silenced."]
    elif len(silence.comment) > MAX_COMMENT:
        errors["comment"] = [f"At most {MAX_COMMENT} characters."]
    if not (silence.author or "").strip():
        errors["author"] = ["A silence names its author."]
    return errors


def _clean(silence: Silence) -> None:
    problems = silence_errors(silence)
    if problems:
        raise ValidationError(problems)
    silence.full_clean()


def _data(silence: Silence) -> dict[str, Any]:
    return {
        "silence": silence.pk,
        "matchers": silence.matchers,
        "starts_at": silence.starts_at.isoformat(),
        "ends_at": silence.ends_at.isoformat(),
        "author": silence.author,
    }


@transaction.atomic
def silence_create(
    *,
    matchers: list[dict[str, str]],
    ends_at: datetime,
    comment: str,
    starts_at: datetime | None = None,
    author: str = "",
    actor: str = "system",
) -> Silence:
    """Create a silence (`silence.created`); the author defaults to the actor. Starts now unless told."""
    silence = Silence(
        matchers=matchers,
        starts_at=starts_at or timezone.now(),
        ends_at=ends_at,
        author=(author or actor)[:150],
        comment=comment,
    )
    _clean(silence)
    silence.save()
    emit("silence.created", subject=f"silence {silence.pk}", data=_data(silence), actor=actor)
    return silence


@transaction.atomic
def silence_update(*, silence: Silence, actor: str = "system", **fields: Any) -> Silence:
    """Change a silence's matchers, times or comment (`silence.updated`); an expired one cannot change."""
    unknown = set(fields) - {"matchers", "starts_at", "ends_at", "comment"}
    if unknown:
        raise TypeError(f"Unknown fields: {sorted(unknown)}")
    locked = Silence.objects.select_for_update().get(pk=silence.pk)
    if silence_state(locked) == "expired":
        raise ValidationError({"ends_at": ["This silence has expired; create a new one."]})
    for name, value in fields.items():
        setattr(locked, name, value)
    _clean(locked)
    locked.save()
    emit(
        "silence.updated", subject=f"silence {locked.pk}", data={**_data(locked), "fields": sorted(fields)}, actor=actor
    )
    return locked


@transaction.atomic
def silence_expire(*, silence: Silence, actor: str = "system", now: datetime | None = None) -> Silence:
    """End a silence now (`silence.expired`); a pending one ends before it began. Expired ones stay as they are."""
    now = now or timezone.now()
    locked = Silence.objects.select_for_update().get(pk=silence.pk)
    if silence_state(locked, now=now) == "expired":
        return locked
    if locked.starts_at > now:
        locked.starts_at = now
    locked.ends_at = now
    locked.save(update_fields=["starts_at", "ends_at", "updated_at"])
    emit("silence.expired", subject=f"silence {locked.pk}", data=_data(locked), actor=actor)
    return locked
