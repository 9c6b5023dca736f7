"""Writes of alerting: rules and channels (validated the same way for admin and API), and rule runs.

A run = claim the rule, evaluate it, release; then flush the due groups of the channels it notifies into
the notification outbox (each channel claimed in turn: groups span rules, see `monitoring.alerting.grouping`).
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from controlplane.egress import EgressDenied, Purpose, check_url
from controlplane.events.services import emit
from monitoring.alerting.evaluation import EvaluationResult, rule_claim, rule_evaluate, rule_release
from monitoring.alerting.grouping import channel_groups_flush
from monitoring.alerting.matchers import LABEL_NAME
from monitoring.alerting.values import METRICS, SUPPORTED
from monitoring.channels import CHANNEL_KINDS
from monitoring.models import AlertRule, AlertTargetKind, Comparison, NotificationChannel, Severity

logger = logging.getLogger("monitoring.alerts")

RULE_FIELDS = (
    "name",
    "description",
    "enabled",
    "target_kind",
    "target",
    "match_labels",
    "metric",
    "comparison",
    "threshold",
    "for_seconds",
    "keep_firing_for_seconds",
    "severity",
    "labels",
    "annotations",
    "flap_threshold",
    "flap_window_seconds",
    "flap_quiet_seconds",
)
GROUPING_FIELDS = (
    "group_by",
    "group_wait_seconds",
    "group_interval_seconds",
    "repeat_interval_seconds",
    "send_resolved",
)
CHANNEL_FIELDS = ("name", "kind", "url", "secret", "recipients", "enabled", *GROUPING_FIELDS)
MAX_DURATION = 30 * 24 * 3600
MAX_LABELS = 30


def _string_map_errors(value: Any, what: str, *, names: bool = True) -> list[str]:
    if not isinstance(value, dict):
        return [f"{what} must be an object of strings."]
    if len(value) > MAX_LABELS:
        return [f"At most {MAX_LABELS} {what}."]
    problems = []
    for key, item in value.items():
        if names and not LABEL_NAME.match(str(key)):
            problems.append(f"{str(key)[:60]!r} is not a label name (letters, digits, _ and ., not first a digit).")
        if not isinstance(item, str) or len(item) > 1000 or "\x00" in item:
            problems.append(f"The value of {str(key)[:60]!r} must be a string of at most 1,000 characters.")
    return problems


def rule_errors(rule: AlertRule) -> dict[str, list[str]]:
    """Field -> messages for a rule whose fields do not fit together (admin, API and services share it)."""
    errors: dict[str, list[str]] = {}

    def add(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

    if rule.target_kind not in AlertTargetKind.values:
        add("target_kind", f"One of {', '.join(AlertTargetKind.values)}.")
    if rule.metric not in METRICS:
        add("metric", f"One of {', '.join(METRICS)}.")
    elif rule.target_kind in SUPPORTED and rule.metric not in SUPPORTED[rule.target_kind]:
        add("metric", f"A {rule.target_kind} rule can watch {', '.join(SUPPORTED[rule.target_kind])}.")
    if rule.comparison not in Comparison.values:
        add("comparison", f"One of {', '.join(Comparison.values)}.")
    if rule.severity not in Severity.values:
        add("severity", f"One of {', '.join(Severity.values)}.")
    needs_target = rule.target_kind in ("service", "instance", "check", "pipeline", "route", "namespace")
    if needs_target and not (rule.target or "").strip():
        add("target", f"A {rule.target_kind} rule names its target.")
    if rule.target_kind == "instance" and rule.target and "/" not in rule.target:
        add("target", "An instance is named <service>/<instance id>.")
    if rule.target_kind == "labels":
        if not rule.match_labels:
            add("match_labels", "A labels rule needs at least one label to match.")
        else:
            for message in _string_map_errors(rule.match_labels, "match labels"):
                add("match_labels", message)
    elif rule.match_labels:
        add("match_labels", "Only a rule of target kind labels matches labels.")
    for name in ("labels", "annotations"):
        for message in _string_map_errors(getattr(rule, name), name, names=name == "labels"):
            add(name, message)
    for name in ("for_seconds", "keep_firing_for_seconds", "flap_window_seconds", "flap_quiet_seconds"):
        value = getattr(rule, name)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_DURATION:
            add(name, f"Whole seconds from 0 to {MAX_DURATION}.")
    if not isinstance(rule.flap_threshold, int) or not 0 <= rule.flap_threshold <= 1000:
        add("flap_threshold", "0 (off) to 1,000 state changes.")
    threshold = rule.threshold
    if (
        not isinstance(threshold, (int, float))
        or isinstance(threshold, bool)
        or threshold != threshold
        or abs(threshold) == float("inf")
    ):
        add("threshold", "A finite number.")
    return errors


def _full_clean(rule: AlertRule) -> None:
    problems = rule_errors(rule)
    try:
        rule.full_clean(exclude=["channels"])
    except ValidationError as exc:
        for name, messages in exc.message_dict.items():
            problems.setdefault(name, []).extend(m for m in messages if m not in problems.get(name, []))
    if problems:
        raise ValidationError(problems)


def _rule_data(rule: AlertRule) -> dict[str, Any]:
    return {
        "rule": rule.pk,
        "name": rule.name,
        "target_kind": rule.target_kind,
        "metric": rule.metric,
        "severity": rule.severity,
    }


@transaction.atomic
def alert_rule_create(
    *, channels: list[NotificationChannel] | None = None, actor: str = "system", **fields: Any
) -> AlertRule:
    """Create a rule after every check (`alert_rule.created`); nothing is saved when one fails."""
    unknown = set(fields) - set(RULE_FIELDS)
    if unknown:
        raise TypeError(f"Unknown fields: {sorted(unknown)}")
    rule = AlertRule(**fields)
    _full_clean(rule)
    rule.save()
    if channels:
        rule.channels.set(channels)
    emit("alert_rule.created", subject=rule.name, data=_rule_data(rule), actor=actor)
    return rule


@transaction.atomic
def alert_rule_update(
    *, rule: AlertRule, channels: list[NotificationChannel] | None = None, actor: str = "system", **fields: Any
) -> AlertRule:
    """Change a rule (`alert_rule.updated`); its alerts keep their state and are re-evaluated next run."""
    unknown = set(fields) - set(RULE_FIELDS)
    if unknown:
        raise TypeError(f"Unknown fields: {sorted(unknown)}")
    locked = AlertRule.objects.select_for_update().get(pk=rule.pk)
    was_enabled = locked.enabled
    for name, value in fields.items():
        setattr(locked, name, value)
    _full_clean(locked)
    locked.save()
    if channels is not None:
        locked.channels.set(channels)
    if was_enabled and not locked.enabled:
        _alerts_clear(locked, actor=actor)
    emit("alert_rule.updated", subject=locked.name, data={**_rule_data(locked), "fields": sorted(fields)}, actor=actor)
    return locked


def _alerts_clear(rule: AlertRule, *, actor: str) -> None:
    """A disabled rule watches nothing: its pending alerts go inactive and its firing ones resolve (stored
    and emitted); the next flush of each group holding one reports it resolved (with `send_resolved`), so
    a receiver is not left with an incident open for good."""
    from monitoring.models import AlertState, AlertTransition

    now = timezone.now()
    for alert in AlertState.objects.filter(rule=rule, status__in=["pending", "firing"]):
        old = alert.status
        alert.status = "inactive" if old == "pending" else "resolved"
        alert.resolved_at = now if old == "firing" else alert.resolved_at
        alert.active_since = None if old == "pending" else alert.active_since
        alert.keep_firing_until = None
        alert.flapping, alert.flapping_since = False, None
        alert.save()
        AlertTransition.objects.create(
            alert=alert, from_status=old, to_status=alert.status, value=alert.value, created_at=now
        )
        emit(
            f"alert.{alert.status}",
            subject=f"{rule.name}: {alert.labels.get('target', '')}"[:255],
            data={
                "rule": rule.name,
                "rule_id": rule.pk,
                "target": alert.labels.get("target", ""),
                "old": old,
                "new": alert.status,
                "reason": "rule disabled",
            },
            actor=actor,
        )


@transaction.atomic
def alert_rule_delete(*, rule: AlertRule, actor: str = "system") -> None:
    """Delete a rule with its alerts (`alert_rule.deleted`); notifications already written still go, and the
    channels' groups forget its alerts (disable it first to have them reported resolved)."""
    data = _rule_data(rule)
    rule.delete()
    emit("alert_rule.deleted", subject=data["name"], data=data, actor=actor)


def _whole_seconds(value: Any, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= MAX_DURATION


def grouping_errors(channel: NotificationChannel) -> dict[str, list[str]]:
    """Field -> messages for a channel's grouping: label names (or `...`), and Alertmanager's timing rules."""
    errors: dict[str, list[str]] = {}
    group_by = channel.group_by
    if (
        not isinstance(group_by, list)
        or len(group_by) > MAX_LABELS
        or not all(isinstance(g, str) and (g == "..." or LABEL_NAME.match(g)) for g in group_by)
    ):
        errors["group_by"] = ['A list of label names ([] = one group; ["..."] = every label, one group per alert).']
    elif "..." in group_by and len(group_by) > 1:
        errors["group_by"] = ['"..." groups by every label: it stands alone.']
    elif len(set(group_by)) != len(group_by):
        errors["group_by"] = ["Name each label once."]  # Alertmanager refuses duplicates too
    for name in ("group_wait_seconds", "repeat_interval_seconds"):
        if not _whole_seconds(getattr(channel, name), 0):
            errors[name] = [f"Whole seconds from 0 to {MAX_DURATION}."]
    interval = channel.group_interval_seconds
    if not _whole_seconds(interval, 1):
        errors["group_interval_seconds"] = [f"Whole seconds from 1 to {MAX_DURATION}."]
    elif _whole_seconds(channel.repeat_interval_seconds, 0) and channel.repeat_interval_seconds < interval:
        errors["repeat_interval_seconds"] = ["The repeat interval cannot be shorter than the group interval."]
    return errors


def notification_channel_errors(channel: NotificationChannel) -> dict[str, list[str]]:
    """Every field check of a channel (admin and API share it): its kind's, the egress guard's, grouping."""
    errors = channel_errors(kind=channel.kind, url=channel.url, recipients=channel.recipients)
    for name, messages in grouping_errors(channel).items():
        errors.setdefault(name, []).extend(messages)
    return errors


def channel_errors(*, kind: str, url: str, recipients: Any) -> dict[str, list[str]]:
    """Field -> messages for a channel: its kind's rules, and the egress guard on its URL (purpose notification)."""
    if kind not in CHANNEL_KINDS:
        return {"kind": [f"One of {', '.join(CHANNEL_KINDS)}."]}
    errors = CHANNEL_KINDS[kind].errors(url=url, recipients=recipients)
    if url and "url" not in errors:
        try:
            check_url(url, purpose=Purpose.NOTIFICATION)
        except EgressDenied as exc:
            errors["url"] = [str(exc)]
    return errors


def _channel_clean(channel: NotificationChannel) -> None:
    problems = notification_channel_errors(channel)
    try:
        channel.full_clean()
    except ValidationError as exc:
        for name, messages in exc.message_dict.items():
            problems.setdefault(name, []).extend(messages)
    if problems:
        raise ValidationError(problems)


def _channel_data(channel: NotificationChannel) -> dict[str, Any]:
    # Never the URL (a Slack hook's path is its secret) nor the signing secret.
    return {
        "channel": channel.pk,
        "name": channel.name,
        "kind": channel.kind,
        "enabled": channel.enabled,
        "group_by": channel.group_by,
    }


@transaction.atomic
def notification_channel_create(*, actor: str = "system", **fields: Any) -> NotificationChannel:
    """Create a channel (`notification_channel.created`); a webhook without a secret gets a generated one."""
    unknown = set(fields) - set(CHANNEL_FIELDS)
    if unknown:
        raise TypeError(f"Unknown fields: {sorted(unknown)}")
    channel = NotificationChannel(**fields)
    if channel.kind == "webhook" and not channel.secret:
        channel.secret = secrets.token_urlsafe(32)
    _channel_clean(channel)
    channel.save()
    emit("notification_channel.created", subject=channel.name, data=_channel_data(channel), actor=actor)
    return channel


@transaction.atomic
def notification_channel_update(
    *, channel: NotificationChannel, actor: str = "system", **fields: Any
) -> NotificationChannel:
    """Change a channel (`notification_channel.updated`); the URL is re-checked by the egress guard."""
    unknown = set(fields) - set(CHANNEL_FIELDS)
    if unknown:
        raise TypeError(f"Unknown fields: {sorted(unknown)}")
    locked = NotificationChannel.objects.select_for_update().get(pk=channel.pk)
    for name, value in fields.items():
        setattr(locked, name, value)
    _channel_clean(locked)
    locked.save()
    emit(
        "notification_channel.updated",
        subject=locked.name,
        data={**_channel_data(locked), "fields": sorted(fields)},
        actor=actor,
    )
    return locked


@transaction.atomic
def notification_channel_delete(*, channel: NotificationChannel, actor: str = "system") -> None:
    """Delete a channel (`notification_channel.deleted`) with its unsent notifications."""
    data = _channel_data(channel)
    channel.delete()
    emit("notification_channel.deleted", subject=data["name"], data=data, actor=actor)


def alert_rule_run(*, rule_id: int, now: datetime | None = None, flush: bool = True) -> EvaluationResult | None:
    """Claim and evaluate one rule, then (`flush`) flush its channels' due groups; None when another worker
    holds the rule (or it is disabled/gone)."""
    claim = rule_claim(rule_id=rule_id)
    if claim is None:
        return None
    now = now or timezone.now()
    try:
        rule = AlertRule.objects.get(pk=rule_id)
        result = rule_evaluate(rule=rule, now=now)
    finally:
        rule_release(rule_id=rule_id, claim=claim, now=now)
    if flush:
        channels_flush(channel_ids=list(rule.channels.filter(enabled=True).values_list("pk", flat=True)), now=now)
    return result


def channels_flush(*, channel_ids: list[int] | None = None, now: datetime | None = None) -> dict[str, int]:
    """Flush the due groups of the channels (all enabled ones when None); a channel held elsewhere is skipped
    (its holder is flushing it)."""
    if channel_ids is None:
        channel_ids = list(NotificationChannel.objects.filter(enabled=True).values_list("pk", flat=True))
    counts = {"channels": 0, "skipped": 0, "notifications": 0}
    for channel_id in channel_ids:
        try:
            written = channel_groups_flush(channel_id=channel_id, now=now)
        except Exception:  # noqa: BLE001 - one broken channel must not stop the others' notifications
            logger.exception("notification channel %s: flush failed", channel_id)
            continue
        if written is None:
            counts["skipped"] += 1
            continue
        counts["channels"] += 1
        counts["notifications"] += len(written)
    return counts


def alert_rules_run(*, metrics: tuple[str, ...] | None = None, now: datetime | None = None) -> dict[str, int]:
    """Evaluate every enabled rule (or those watching `metrics`), then flush the channels once: all enabled
    ones (group timers run whatever was evaluated), or with `metrics` those of the rules evaluated. Rules
    held by another worker are skipped."""
    rules = AlertRule.objects.filter(enabled=True)
    if metrics is not None:
        rules = rules.filter(metric__in=metrics)
    counts = {"rules": 0, "skipped": 0, "transitions": 0}
    evaluated: list[int] = []
    for rule_id in rules.values_list("pk", flat=True):
        try:
            result = alert_rule_run(rule_id=rule_id, now=now, flush=False)
        except Exception:  # noqa: BLE001 - one broken rule must not stop the others' evaluation
            logger.exception("alert rule %s: evaluation failed", rule_id)
            continue
        if result is None:
            counts["skipped"] += 1
            continue
        evaluated.append(rule_id)
        counts["rules"] += 1
        counts["transitions"] += len(result.transitions)
    if metrics is None:
        channels_flush(now=now)
    elif evaluated:
        ids = NotificationChannel.objects.filter(enabled=True, rules__in=evaluated).values_list("pk", flat=True)
        channels_flush(channel_ids=sorted(set(ids)), now=now)
    return counts


def alert_history_prune(*, older_than_days: int | None = None, now: datetime | None = None) -> int:
    """Delete alert transitions and settled notifications older than MONITORING_ALERT_HISTORY_DAYS.

    A flapping target stores a transition per change: without this the table grows without bound. Pending
    notifications are never deleted, whatever their age (the engine still owes them an attempt).
    """
    from datetime import timedelta

    from monitoring import conf
    from monitoring.models import AlertTransition, Notification

    days = older_than_days if older_than_days is not None else int(conf.get("MONITORING_ALERT_HISTORY_DAYS"))
    cutoff = (now or timezone.now()) - timedelta(days=days)
    transitions, _ = AlertTransition.objects.filter(created_at__lt=cutoff).delete()
    notifications, _ = Notification.objects.filter(created_at__lt=cutoff).exclude(status="pending").delete()
    return transitions + notifications
