"""Helpers for the alerting tests: a service with one instance and check, rules, runs at chosen times."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from controlplane.delivery.services import delivery_attempt
from monitoring.models import AlertRule, Notification, NotificationChannel
from monitoring.services import alerts as alert_services
from registry.models import Check, Instance
from tests.registry.factories import CheckFactory


def target(status: str = "passing", *, service: str = "payments", instance_id: str = "i-1") -> Check:
    """A check on instance `instance_id` of `service`, check and instance in `status`."""
    from registry.models import Service

    svc = Service.objects.filter(name=service).first()
    if svc is None:
        from tests.registry.factories import ServiceFactory

        svc = ServiceFactory(name=service)
    check = CheckFactory(instance__service=svc, instance__instance_id=instance_id, status=status)
    Instance.objects.filter(pk=check.instance_id).update(status=status)
    return check


def set_status(check: Check, status: str) -> None:
    """The check and its instance now in `status` (as the registry stores it)."""
    Check.objects.filter(pk=check.pk).update(status=status)
    Instance.objects.filter(pk=check.instance_id).update(status=status)


# Tests' channels notify at once unless told otherwise (the defaults are Alertmanager's 30 s / 5 min / 4 h).
FAST_GROUPING: dict[str, Any] = {"group_wait_seconds": 0, "group_interval_seconds": 10, "repeat_interval_seconds": 3600}


def webhook_channel(url: str, name: str = "ops", **fields: Any) -> NotificationChannel:
    """A webhook channel to `url`, grouping as FAST_GROUPING unless `fields` say otherwise."""
    return alert_services.notification_channel_create(name=name, kind="webhook", url=url, **{**FAST_GROUPING, **fields})


def instance_rule(channel: NotificationChannel | None, *, target_ref: str = "payments/i-1", **fields: Any) -> AlertRule:
    """An instance rule: status >= 2 (critical). Grouping fields given here are set on `channel` (grouping
    is the channel's)."""
    grouping = {name: fields.pop(name) for name in alert_services.GROUPING_FIELDS if name in fields}
    if grouping and channel is not None:
        channel = alert_services.notification_channel_update(channel=channel, **grouping)
    values: dict[str, Any] = {
        "name": "payments-down",
        "target_kind": "instance",
        "target": target_ref,
        "metric": "status",
        "comparison": "ge",
        "threshold": 2,
        "for_seconds": 0,
        "severity": "critical",
        "annotations": {"summary": "{{ labels.service }} status {{ value }}"},
    }
    values.update(fields)
    return alert_services.alert_rule_create(channels=[channel] if channel else [], **values)


def run(rule: AlertRule, at: datetime) -> Any:
    """One evaluation + flush of `rule` at `at` (the claim is taken and released)."""
    result = alert_services.alert_rule_run(rule_id=rule.pk, now=at)
    assert result is not None, "the rule was held by another worker"
    return result


def send_pending() -> int:
    """Attempt every pending notification once through the delivery engine; returns how many were tried."""
    ids = list(Notification.objects.filter(status="pending").values_list("pk", flat=True))
    for pk in ids:
        delivery_attempt(kind="notification", delivery_id=pk)
    return len(ids)


def bodies(receiver: Any) -> list[dict[str, Any]]:
    return [json.loads(request["body"]) for request in receiver.requests]


def seconds(base: datetime, offset: float) -> datetime:
    return base + timedelta(seconds=offset)
