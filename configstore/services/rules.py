"""Writes for rules: add, change, remove. Each bumps the namespace's `rules_version`, so every process
recompiles that namespace's rules once on its next write.

Rules apply to later writes; values already stored are not re-checked.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from configstore.models import Namespace, Rule
from configstore.rules import validate_rule_params
from controlplane.events.services import emit


def _rule_validate(rule: Rule) -> None:
    errors: dict[str, list[str]] = {}
    if (
        not rule.key
        or not isinstance(rule.key, str)
        or len(rule.key) > 255
        or not all(c.isalnum() or c in "._*?[]-!" for c in rule.key)
    ):
        errors["key"] = ["Give a key or a glob such as db.* ."]
    problems = validate_rule_params(rule.kind, rule.params)
    if problems:
        known = isinstance(rule.kind, str) and rule.kind in {c for c, _ in Rule._meta.get_field("kind").choices}
        errors["params" if known else "kind"] = problems
    if errors:
        raise ValidationError(errors)
    rule.full_clean(exclude=["params"])


def _bump_rules(namespace: Namespace) -> None:
    # A rule change is a change of the namespace: `.update()` skips `auto_now`, so its time is set here.
    Namespace.objects.filter(pk=namespace.pk).update(rules_version=F("rules_version") + 1, updated_at=timezone.now())
    namespace.refresh_from_db(fields=["rules_version", "updated_at"])


@transaction.atomic
def rule_create(
    *, namespace: Namespace, key: str, kind: str, params: dict | None = None, message: str = "", actor: str
) -> Rule:
    """Add a rule; it applies to every later write (existing values are not re-checked)."""
    rule = Rule(
        namespace=namespace, key=key, kind=kind, params=params if params is not None else {}, message=message or ""
    )
    _rule_validate(rule)
    rule.save()
    _bump_rules(namespace)
    emit("config.rule_created", subject=namespace.name, data={"rule": rule.pk, "key": key, "kind": kind}, actor=actor)
    return rule


@transaction.atomic
def rule_update(*, rule: Rule, actor: str, **fields: Any) -> Rule:
    """Change a rule's key, kind, params or message."""
    for name, value in fields.items():
        setattr(rule, name, value)
    _rule_validate(rule)
    rule.save()
    _bump_rules(rule.namespace)
    emit(
        "config.rule_updated",
        subject=rule.namespace.name,
        data={"rule": rule.pk, "fields": sorted(fields)},
        actor=actor,
    )
    return rule


@transaction.atomic
def rule_delete(*, rule: Rule, actor: str) -> None:
    """Remove a rule."""
    namespace, rule_id = rule.namespace, rule.pk
    rule.delete()
    _bump_rules(namespace)
    emit("config.rule_deleted", subject=namespace.name, data={"rule": rule_id}, actor=actor)
