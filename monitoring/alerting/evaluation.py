"""One evaluation of one rule: claim it, read its targets' values, advance their alerts, store and emit.

A rule is evaluated by one worker at a time: the claim is a conditional UPDATE of `evaluating_until`
(free or expired -> now + MONITORING_ALERT_CLAIM_SECONDS), released only by its holder. A worker that dies
mid-evaluation leaves a claim that simply runs out.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from controlplane.events.services import emit
from monitoring import conf
from monitoring.alerting.states import advance, condition_holds, flapping_update
from monitoring.alerting.targets import Target, rule_targets
from monitoring.alerting.values import target_values
from monitoring.models import AlertRule, AlertState, AlertTransition

RESERVED = ("alertname", "severity", "target_kind", "target")
# The fields an evaluation may change (written only when one did).
STATE_FIELDS = [
    "status",
    "value",
    "labels",
    "fingerprint",
    "active_since",
    "firing_since",
    "keep_firing_until",
    "resolved_at",
]
TEMPLATE = re.compile(r"\{\{\s*(\$?value|\$?target|\$?labels\.([A-Za-z0-9_.]+))\s*\}\}")


@dataclass
class EvaluationResult:
    """What one evaluation did."""

    rule_id: int
    targets: int = 0
    transitions: list[tuple[str, str, str]] = field(default_factory=list)  # (target key, old, new)
    flapping: list[tuple[str, str]] = field(default_factory=list)  # (target key, started|ended)


def rule_claim(*, rule_id: int) -> datetime | None:
    """Take the rule for one evaluation (conditional UPDATE); the claim's expiry, or None when held elsewhere.

    Claims run on the wall clock whatever time an evaluation is for (tests evaluate at chosen times).
    """
    now = timezone.now()
    until = now + timedelta(seconds=int(conf.get("MONITORING_ALERT_CLAIM_SECONDS")))
    taken = (
        AlertRule.objects.filter(pk=rule_id, enabled=True)
        .filter(Q(evaluating_until__isnull=True) | Q(evaluating_until__lt=now))
        .update(evaluating_until=until)
    )
    return until if taken else None


def rule_release(*, rule_id: int, claim: datetime, now: datetime) -> None:
    """Give the rule back, only if this claim still holds it."""
    AlertRule.objects.filter(pk=rule_id, evaluating_until=claim).update(evaluating_until=None, last_evaluated_at=now)


def fingerprint(labels: dict[str, str]) -> str:
    """A stable id of an alert's label set (what Alertmanager groups and silences by)."""
    return hashlib.sha256(json.dumps(labels, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def alert_labels(rule: AlertRule, target: Target) -> dict[str, str]:
    """The rule's labels, then the target's, then alertname and severity (those cannot be overridden)."""
    labels = {str(k): str(v) for k, v in (rule.labels or {}).items() if k not in RESERVED}
    labels.update(target.labels)
    labels.update(alertname=rule.name, severity=rule.severity)
    return labels


def render(text: str, *, value: float | None, labels: dict[str, str]) -> str:
    """`{{ value }}`, `{{ target }}` and `{{ labels.x }}` in an annotation, nothing else (no code runs)."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1).lstrip("$")
        if name == "value":
            return "n/a" if value is None else f"{value:g}"
        if name == "target":
            return labels.get("target", "")
        return labels.get(match.group(2) or "", "")

    return TEMPLATE.sub(replace, text)


def annotations_for(rule: AlertRule, alert: AlertState) -> dict[str, str]:
    """The rule's annotations rendered with the alert's value; a summary with the value when none is set."""
    rendered = {
        str(k): render(str(v), value=alert.value, labels=alert.labels) for k, v in (rule.annotations or {}).items()
    }
    if "summary" not in rendered:
        value = "n/a" if alert.value is None else f"{alert.value:g}"
        rendered["summary"] = (
            f"{rule.metric} of {alert.labels.get('target', '')} is {value} "
            f"({rule.get_comparison_display()} {rule.threshold:g})"
        )
    return rendered


def rule_evaluate(*, rule: AlertRule, now: datetime | None = None, actor: str = "system") -> EvaluationResult:
    """Advance every alert of `rule` for the values now; store transitions and emit `alert.<status>` on commit.

    The caller holds the rule's claim (`rule_claim`), so no other worker writes these alerts meanwhile.
    """
    now = now or timezone.now()
    result = EvaluationResult(rule_id=rule.pk)
    targets = rule_targets(rule)
    result.targets = len(targets)
    values = target_values(rule.metric, targets, now=now)
    by_key = {t.key: t for t in targets}
    with transaction.atomic():
        states = {s.target_key: s for s in AlertState.objects.filter(rule=rule)}
        touched: list[AlertState] = []
        created: list[AlertState] = []
        changes: list[tuple[AlertState, str, str]] = []
        for key in by_key.keys() | states.keys():
            target = by_key.get(key)
            value = values.get(key) if target else None
            holds = condition_holds(rule, value)
            alert = states.get(key)
            if alert is None:
                if not holds or target is None:
                    continue  # inactive targets get no row until they first become active
                labels = alert_labels(rule, target)
                alert = AlertState(rule=rule, target_key=key[:300], labels=labels, fingerprint=fingerprint(labels))
                created.append(alert)
            before = tuple(getattr(alert, name) for name in STATE_FIELDS)
            if target is not None and alert.pk is not None:
                labels = alert_labels(rule, target)
                if labels != alert.labels:
                    alert.labels, alert.fingerprint = labels, fingerprint(labels)
            change = advance(alert, rule, holds=holds, value=value, now=now)
            if change is None and alert.status in ("inactive", "resolved"):
                alert.value = before[STATE_FIELDS.index("value")]  # a quiet alert's value is not worth a write
            # Only rows that changed are written: a labels rule over 10,000 instances rewrites its few
            # active alerts each run, not every row it ever created.
            if alert.pk is not None and tuple(getattr(alert, name) for name in STATE_FIELDS) != before:
                touched.append(alert)
            if change is not None:
                changes.append((alert, change.old, change.new))
        AlertState.objects.bulk_create(created, batch_size=500)
        AlertState.objects.bulk_update(touched, [*STATE_FIELDS, "last_evaluated_at"], batch_size=500)
        AlertTransition.objects.bulk_create(
            [
                AlertTransition(
                    alert=a, from_status=old, to_status=new, value=a.value, flapping=a.flapping, created_at=now
                )
                for a, old, new in changes
            ],
            batch_size=500,
        )
        for alert, old, new in changes:
            result.transitions.append((alert.target_key, old, new))
            emit(
                f"alert.{new}",
                subject=f"{rule.name}: {alert.labels.get('target', '')}"[:255],
                data=_event(rule, alert, old),
                actor=actor,
            )
        _flapping(
            rule,
            list(states.values()) + created,
            changed={a.pk for a, _, _ in changes},
            now=now,
            result=result,
            actor=actor,
        )
    return result


def _flapping(
    rule: AlertRule, alerts: list[AlertState], *, changed: set[int], now: datetime, result: EvaluationResult, actor: str
) -> None:
    """Enter/leave flapping for the alerts that just changed or are flapping (two aggregate queries)."""
    if rule.flap_threshold == 0:
        return
    candidates = [a for a in alerts if a.pk in changed or a.flapping]
    if not candidates:
        return
    ids = [a.pk for a in candidates]
    window_start = now - timedelta(seconds=rule.flap_window_seconds)
    stats = {
        row["alert_id"]: row
        for row in AlertTransition.objects.filter(alert_id__in=ids)
        .exclude(from_status="inactive", to_status="pending")  # a blip that never fired is not a flap
        .values("alert_id")
        .annotate(
            recent=Count("id", filter=Q(created_at__gt=window_start)),
            last=Max("created_at"),
        )
    }
    updated = []
    for alert in candidates:
        row = stats.get(alert.pk, {})
        what = flapping_update(
            alert, rule, recent_changes=row.get("recent", 0), last_change_at=row.get("last"), now=now
        )
        if what is None:
            continue
        updated.append(alert)
        result.flapping.append((alert.target_key, what))
        kind = "alert.flapping" if what == "started" else "alert.flapping_ended"
        emit(
            kind,
            subject=f"{rule.name}: {alert.labels.get('target', '')}"[:255],
            data=_event(rule, alert, alert.status),
            actor=actor,
        )
    AlertState.objects.bulk_update(updated, ["flapping", "flapping_since"], batch_size=500)


def _event(rule: AlertRule, alert: AlertState, old: str) -> dict[str, Any]:
    return {
        "rule": rule.name,
        "rule_id": rule.pk,
        "severity": rule.severity,
        "target": alert.labels.get("target", ""),
        "target_key": alert.target_key,
        "fingerprint": alert.fingerprint,
        "old": old,
        "new": alert.status,
        "value": alert.value,
        "flapping": alert.flapping,
        "labels": alert.labels,
    }
