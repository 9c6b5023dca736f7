"""Aggregation groups and their notifications, with Alertmanager's semantics across rules.

A channel is a receiver together with its route: the alerts of every rule that notifies it are grouped by
the values of the channel's `group_by` labels (default `["alertname"]`: one group per rule; `[]`: one group
for the channel; `["..."]`: every label, one group per alert), so two rules whose alerts carry the same
group labels make one group and one message. A group is keyed by (channel, group label values); an alert
routed to two channels is in one group of each, with each channel's own timing.

A group with no pending flush waits `group_wait` from its first firing alert, then is flushed every
`group_interval` while it holds alerts. A flush notifies when a firing alert is new to the group, when a
notified alert resolved (with `send_resolved`), or when `repeat_interval` has passed since the last
notification with alerts still firing. Silenced alerts and alerts whose target is in maintenance are left
out of the message (and so never notified); a flapping alert is reported once as firing with the
annotation `flapping: "true"` and not again while it flaps.

A channel's groups are flushed by one worker at a time (a claim on the channel by conditional UPDATE, as
rules are claimed for evaluation). Each notification is one outbox row (`Notification`), created in the
flush's transaction and sent by the platform's delivery engine: claimed by a conditional UPDATE, so it is
delivered at least once and never by two workers at once.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from controlplane.delivery.services import deliveries_enqueue
from monitoring import conf
from monitoring.alerting.evaluation import annotations_for
from monitoring.alerting.models import AlertGroup, Notification
from monitoring.alerting.suppression import Suppressor
from monitoring.models import AlertState, NotificationChannel

MAX_ALERTS_PER_MESSAGE = 200
ZERO_TIME = "0001-01-01T00:00:00Z"


def group_of(channel: NotificationChannel, labels: dict[str, str]) -> tuple[str, dict[str, str]]:
    """(key, group labels) of the channel's group an alert with `labels` belongs to.

    A label the alert does not carry groups as empty, as in Alertmanager (it is left out of groupLabels).
    """
    names = list(channel.group_by or [])
    grouped = dict(labels) if "..." in names else {name: labels[name] for name in names if labels.get(name)}
    key = hashlib.sha256(json.dumps(grouped, sort_keys=True).encode()).hexdigest()[:32]
    return key, grouped


def alert_key(alert: AlertState) -> str:
    """What a group remembers of a notified alert: its fingerprint, marked while it flaps."""
    return f"{alert.fingerprint}:flapping" if alert.flapping else alert.fingerprint


def _iso(when: datetime | None) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if when else ZERO_TIME


def _alert_message(alert: AlertState, *, status: str, now: datetime) -> dict[str, Any]:
    annotations = annotations_for(alert.rule, alert)
    if alert.flapping and status == "firing":
        annotations["flapping"] = "true"
        annotations["summary"] = f"{alert.labels.get('target', '')} is flapping ({annotations['summary']})"
    return {
        "status": status,
        "labels": alert.labels,
        "annotations": annotations,
        "startsAt": _iso(alert.firing_since or alert.active_since),
        "endsAt": _iso(alert.resolved_at or now) if status == "resolved" else ZERO_TIME,
        "generatorURL": f"{settings.CONTROLPLANE_PUBLIC_URL}/dashboard/alerts/",
        "fingerprint": alert.fingerprint,
    }


def _common(items: list[dict[str, str]]) -> dict[str, str]:
    if not items:
        return {}
    common = dict(items[0])
    for item in items[1:]:
        common = {k: v for k, v in common.items() if item.get(k) == v}
    return common


def group_key(channel: NotificationChannel, labels: dict[str, str]) -> str:
    """Alertmanager's shape, `<route>:<group labels>`: `{}/{receiver="ops"}:{service="payments"}`."""
    rendered = ", ".join(f"{name}={json.dumps(value, ensure_ascii=False)}" for name, value in sorted(labels.items()))
    return f"{{}}/{{receiver={json.dumps(channel.name, ensure_ascii=False)}}}:{{{rendered}}}"


def message(
    channel: NotificationChannel,
    group: AlertGroup,
    firing: list[AlertState],
    resolved: list[AlertState],
    now: datetime,
) -> dict[str, Any]:
    """The Alertmanager webhook message (version 4) for one group of one receiver."""
    alerts = [_alert_message(a, status="firing", now=now) for a in firing]
    alerts += [_alert_message(a, status="resolved", now=now) for a in resolved]
    truncated = max(0, len(alerts) - MAX_ALERTS_PER_MESSAGE)
    alerts = alerts[:MAX_ALERTS_PER_MESSAGE]
    group_labels = dict(group.labels)
    return {
        "version": "4",
        "groupKey": group_key(channel, group_labels),
        "truncatedAlerts": truncated,
        "status": "firing" if firing else "resolved",
        "receiver": channel.name,
        "groupLabels": group_labels,
        "commonLabels": _common([a["labels"] for a in alerts]),
        "commonAnnotations": _common([a["annotations"] for a in alerts]),
        "externalURL": settings.CONTROLPLANE_PUBLIC_URL,
        "alerts": alerts,
    }


def channel_claim(*, channel_id: int) -> datetime | None:
    """Take the channel's groups for one flush (conditional UPDATE); the claim's expiry, or None when held.

    Like a rule's claim it runs on the wall clock, and a worker that dies mid-flush leaves a claim that runs
    out; the flush is one transaction, so nothing of it is half-written.
    """
    now = timezone.now()
    until = now + timedelta(seconds=int(conf.get("MONITORING_ALERT_CLAIM_SECONDS")))
    taken = (
        NotificationChannel.objects.filter(pk=channel_id, enabled=True)
        .filter(Q(flushing_until__isnull=True) | Q(flushing_until__lt=now))
        .update(flushing_until=until)
    )
    return until if taken else None


def channel_release(*, channel_id: int, claim: datetime) -> None:
    """Give the channel back, only if this claim still holds it."""
    NotificationChannel.objects.filter(pk=channel_id, flushing_until=claim).update(flushing_until=None)


def channel_groups_flush(*, channel_id: int, now: datetime | None = None) -> list[int] | None:
    """Claim the channel and flush its due groups; the ids of the notifications written (queued on commit),
    or None when another worker holds the channel (or it is disabled or gone)."""
    claim = channel_claim(channel_id=channel_id)
    if claim is None:
        return None
    try:
        channel = NotificationChannel.objects.get(pk=channel_id)
        return _channel_flush(channel, now or timezone.now())
    finally:
        channel_release(channel_id=channel_id, claim=claim)


def _channel_flush(channel: NotificationChannel, now: datetime) -> list[int]:
    # Every alert routed here, whatever its rule: firing ones, and flapping ones (reported once).
    active = list(
        AlertState.objects.filter(rule__channels=channel, rule__enabled=True)
        .filter(Q(status="firing") | Q(flapping=True))
        .select_related("rule")
    )
    by_group: dict[str, list[AlertState]] = {}
    group_labels: dict[str, dict[str, str]] = {}
    for alert in active:
        key, labels = group_of(channel, alert.labels)
        by_group.setdefault(key, []).append(alert)
        group_labels[key] = labels
    groups = {g.key: g for g in AlertGroup.objects.filter(channel=channel)}
    suppressor: Suppressor | None = None
    written: list[int] = []
    with transaction.atomic():
        for key in by_group.keys() | groups.keys():
            members = by_group.get(key, [])
            group = groups.get(key)
            if group is None:
                group = AlertGroup.objects.create(channel=channel, key=key, labels=group_labels[key])
            if group.next_flush_at is None:
                if not members and not group.notified:
                    continue
                # An alert older than the group wait is sent at once (Alertmanager: a group created for an
                # alert that started long ago does not wait again).
                first = min((a.firing_since or a.flapping_since or now) for a in members) if members else now
                group.next_flush_at = first + timedelta(seconds=channel.group_wait_seconds)
                if group.next_flush_at > now:
                    group.save(update_fields=["next_flush_at"])
                    continue
            if group.next_flush_at > now:
                continue
            if suppressor is None:
                suppressor = Suppressor(now=now)
            written += _flush(channel, group, members, suppressor, now)
    if written:
        deliveries_enqueue(kind=Notification.delivery_kind, ids=written)
    return written


def _flush(
    channel: NotificationChannel, group: AlertGroup, members: list[AlertState], suppressor: Suppressor, now: datetime
) -> list[int]:
    muted = [a for a in members if suppressor.muted(a)]
    muted_keys = {alert_key(a) for a in muted}
    muted_fps = {a.fingerprint for a in muted}
    firing = [a for a in members if alert_key(a) not in muted_keys]
    current = {alert_key(a) for a in firing}
    notified = set(group.notified)
    # Alerts muted since they were notified are neither re-sent nor reported resolved while muted.
    previously = {k for k in notified if k.split(":")[0] not in muted_fps}
    member_fps = {a.fingerprint for a in members}
    gone_fps = {k.split(":")[0] for k in previously} - member_fps
    # Alerts of any rule routed here (a disabled rule's alerts were resolved when it was disabled: reported
    # resolved like any other). An alert whose rule was deleted is gone with it and simply forgotten.
    gone = (
        list(AlertState.objects.filter(rule__channels=channel, fingerprint__in=sorted(gone_fps)).select_related("rule"))
        if gone_fps
        else []
    )
    # An alert that stopped firing because its target went into maintenance (the registry flag makes its
    # status "maintenance") is muted too: its resolution is reported once the mute ends, not during it.
    gone_muted = {a.fingerprint for a in gone if suppressor.muted(a)}
    resolved = [a for a in gone if a.fingerprint not in gone_muted] if channel.send_resolved else []
    repeat_due = bool(
        current
        and group.last_notified_at is not None
        and now - group.last_notified_at >= timedelta(seconds=channel.repeat_interval_seconds)
    )
    send = bool(current - previously) or bool(resolved) or repeat_due
    written: list[int] = []
    if send:
        payload = message(channel, group, firing, resolved, now)
        row = Notification.objects.create(
            channel=channel,
            group=group,
            alert_status=payload["status"],
            payload=payload,
            next_attempt_at=timezone.now(),
        )
        written.append(row.pk)
        group.last_notified_at = now
    group.notified = sorted(current | {k for k in notified if k.split(":")[0] in muted_fps | gone_muted})
    group.next_flush_at = (
        now + timedelta(seconds=channel.group_interval_seconds) if (members or group.notified) else None
    )
    if not members and not group.notified:
        group.delete()
    else:
        group.save(update_fields=["notified", "next_flush_at", "last_notified_at"])
    return written
