"""Alertmanager grouping across rules, through a real local webhook receiver.

A channel groups the alerts of every rule that notifies it by the values of its `group_by` labels: two
rules whose alerts share the group labels make one notification carrying both alerts; group_wait,
group_interval, repeat_interval and send_resolved are the channel's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from django.utils import timezone

from monitoring.alerting.grouping import channel_claim, channel_groups_flush, channel_release
from monitoring.models import AlertGroup, AlertRule, Notification, NotificationChannel
from monitoring.services import alerts as alert_services
from tests.monitoring.alert_fixtures import bodies, seconds, send_pending, set_status, target, webhook_channel
from tests.receivers import Receiver

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _loopback_receivers_allowed(settings):  # type: ignore[no-untyped-def]
    settings.EGRESS_ALLOW_NETWORKS = ["127.0.0.0/8"]


def rule(name: str, target_ref: str, channel: NotificationChannel, **labels: str) -> AlertRule:
    """An instance rule `status >= 2` carrying `labels`, notifying `channel`."""
    return alert_services.alert_rule_create(
        name=name,
        target_kind="instance",
        target=target_ref,
        metric="status",
        comparison="ge",
        threshold=2,
        labels=labels,
        channels=[channel],
    )


def tick(at: datetime) -> None:
    """What beat does every few seconds: evaluate every rule, flush every channel; then deliver."""
    alert_services.alert_rules_run(now=at)
    send_pending()


def alertnames(message: dict[str, Any]) -> list[str]:
    return sorted(a["labels"]["alertname"] for a in message["alerts"])


def test_two_rules_with_the_same_group_labels_make_one_notification_with_both_alerts() -> None:
    target("critical", service="payments", instance_id="p-1")
    target("critical", service="payments", instance_id="p-2")
    t0 = timezone.now()
    with Receiver() as receiver:
        ops = webhook_channel(receiver.url, group_by=["team"], group_wait_seconds=30)
        rule("p1-down", "payments/p-1", ops, team="payments")
        rule("p2-down", "payments/p-2", ops, team="payments")
        tick(t0)
        assert receiver.requests == [], "the group waits group_wait before its first notification"
        tick(seconds(t0, 30))
        (message,) = bodies(receiver)
    assert alertnames(message) == ["p1-down", "p2-down"]
    assert message["groupLabels"] == {"team": "payments"}
    assert message["groupKey"] == '{}/{receiver="ops"}:{team="payments"}'
    assert message["commonLabels"]["team"] == "payments" and "alertname" not in message["commonLabels"]
    assert message["status"] == "firing" and message["receiver"] == "ops" and message["version"] == "4"
    assert AlertGroup.objects.count() == 1 and Notification.objects.count() == 1


def test_different_group_label_values_make_two_notifications() -> None:
    target("critical", service="payments", instance_id="p-1")
    target("critical", service="billing", instance_id="b-1")
    t0 = timezone.now()
    with Receiver() as receiver:
        ops = webhook_channel(receiver.url, group_by=["team"], group_wait_seconds=0)
        rule("p1-down", "payments/p-1", ops, team="payments")
        rule("b1-down", "billing/b-1", ops, team="billing")
        tick(t0)
        messages = {m["groupLabels"]["team"]: m for m in bodies(receiver)}
    assert set(messages) == {"payments", "billing"}
    assert alertnames(messages["payments"]) == ["p1-down"] and alertnames(messages["billing"]) == ["b1-down"]


def test_default_group_by_alertname_keeps_rules_apart_and_empty_group_by_is_one_group() -> None:
    target("critical", service="payments", instance_id="p-1")
    target("critical", service="billing", instance_id="b-1")
    t0 = timezone.now()
    with Receiver() as per_rule, Receiver() as together:
        default = webhook_channel(per_rule.url, name="per-rule")
        assert default.group_by == ["alertname"]
        one = webhook_channel(together.url, name="together", group_by=[])
        for name, ref, team in (("p1-down", "payments/p-1", "payments"), ("b1-down", "billing/b-1", "billing")):
            alert_services.alert_rule_create(
                name=name,
                target_kind="instance",
                target=ref,
                metric="status",
                comparison="ge",
                threshold=2,
                labels={"team": team},
                channels=[default, one],
            )
        tick(t0)
        assert sorted(alertnames(m)[0] for m in bodies(per_rule)) == ["b1-down", "p1-down"]
        (message,) = bodies(together)
    assert alertnames(message) == ["b1-down", "p1-down"] and message["groupLabels"] == {}


def test_group_by_everything_is_one_group_per_alert() -> None:
    target("critical", service="payments", instance_id="p-1")
    target("critical", service="payments", instance_id="p-2")
    t0 = timezone.now()
    with Receiver() as receiver:
        ops = webhook_channel(receiver.url, group_by=["..."])
        rule("p1-down", "payments/p-1", ops, team="payments")
        rule("p2-down", "payments/p-2", ops, team="payments")
        tick(t0)
        messages = bodies(receiver)
    assert len(messages) == 2 and all(len(m["alerts"]) == 1 for m in messages)
    assert {m["groupLabels"]["alertname"] for m in messages} == {"p1-down", "p2-down"}


def test_group_wait_collects_an_alert_of_another_rule_that_fires_meanwhile() -> None:
    target("critical", service="payments", instance_id="p-1")
    late = target("passing", service="payments", instance_id="p-2")
    t0 = timezone.now()
    with Receiver() as receiver:
        ops = webhook_channel(receiver.url, group_by=["team"], group_wait_seconds=30, group_interval_seconds=300)
        rule("p1-down", "payments/p-1", ops, team="payments")
        rule("p2-down", "payments/p-2", ops, team="payments")
        tick(t0)
        set_status(late, "critical")
        tick(seconds(t0, 20))
        assert receiver.requests == []
        tick(seconds(t0, 30))
        (message,) = bodies(receiver)
    assert alertnames(message) == ["p1-down", "p2-down"]


def test_group_interval_holds_back_a_newly_firing_alert_then_repeat_interval_resends_unchanged() -> None:
    target("critical", service="payments", instance_id="p-1")
    late = target("passing", service="payments", instance_id="p-2")
    t0 = timezone.now()
    with Receiver() as receiver:
        ops = webhook_channel(
            receiver.url,
            group_by=["team"],
            group_wait_seconds=0,
            group_interval_seconds=60,
            repeat_interval_seconds=600,
        )
        rule("p1-down", "payments/p-1", ops, team="payments")
        rule("p2-down", "payments/p-2", ops, team="payments")
        tick(t0)
        assert len(receiver.requests) == 1
        set_status(late, "critical")
        for offset in (10, 30, 59):
            tick(seconds(t0, offset))
        assert len(receiver.requests) == 1, "a new alert in a notified group waits for the group interval"
        tick(seconds(t0, 60))
        assert len(receiver.requests) == 2
        for offset in range(120, 660, 60):  # group ticks with nothing new: no message before repeat_interval
            tick(seconds(t0, offset))
        assert len(receiver.requests) == 2
        tick(seconds(t0, 660))  # 600 s after the last notification
        messages = bodies(receiver)
    assert [alertnames(m) for m in messages] == [["p1-down"], ["p1-down", "p2-down"], ["p1-down", "p2-down"]]


def test_send_resolved_reports_one_rules_alert_resolved_beside_the_other_still_firing() -> None:
    first = target("critical", service="payments", instance_id="p-1")
    target("critical", service="payments", instance_id="p-2")
    t0 = timezone.now()
    with Receiver() as receiver, Receiver() as quiet:
        ops = webhook_channel(receiver.url, group_by=["team"], group_interval_seconds=30)
        silent = webhook_channel(quiet.url, name="no-resolved", group_by=["team"], send_resolved=False)
        for name, ref in (("p1-down", "payments/p-1"), ("p2-down", "payments/p-2")):
            alert_services.alert_rule_create(
                name=name,
                target_kind="instance",
                target=ref,
                metric="status",
                comparison="ge",
                threshold=2,
                labels={"team": "payments"},
                channels=[ops, silent],
            )
        tick(t0)
        set_status(first, "passing")
        tick(seconds(t0, 10))
        assert len(receiver.requests) == 1, "the resolution waits for the group's next tick"
        tick(seconds(t0, 30))
        messages = bodies(receiver)
        assert len(bodies(quiet)) == 1, "without send_resolved a resolution alone sends nothing"
    assert len(messages) == 2
    statuses = {a["labels"]["alertname"]: a["status"] for a in messages[1]["alerts"]}
    assert statuses == {"p1-down": "resolved", "p2-down": "firing"}
    assert messages[1]["status"] == "firing"  # the group still has a firing alert


def test_a_channel_flushed_by_another_worker_is_skipped_and_nothing_is_sent_twice() -> None:
    target("critical", service="payments", instance_id="p-1")
    t0 = timezone.now()
    with Receiver() as receiver:
        ops = webhook_channel(receiver.url)
        rule("p1-down", "payments/p-1", ops)
        claim = channel_claim(channel_id=ops.pk)  # another worker is flushing this channel
        assert claim is not None
        alert_services.alert_rules_run(now=t0)
        assert channel_groups_flush(channel_id=ops.pk, now=t0) is None, "held by the other worker"
        assert not Notification.objects.exists()
        channel_release(channel_id=ops.pk, claim=claim)
        assert len(channel_groups_flush(channel_id=ops.pk, now=t0) or []) == 1
        assert channel_groups_flush(channel_id=ops.pk, now=seconds(t0, 1)) == [], "notified: not again"
        send_pending()
        send_pending()
        assert len(receiver.requests) == 1


def test_disabling_a_rule_reports_its_alert_resolved_in_the_shared_group() -> None:
    target("critical", service="payments", instance_id="p-1")
    target("critical", service="payments", instance_id="p-2")
    t0 = timezone.now()
    with Receiver() as receiver:
        ops = webhook_channel(receiver.url, group_by=["team"])
        one = rule("p1-down", "payments/p-1", ops, team="payments")
        rule("p2-down", "payments/p-2", ops, team="payments")
        tick(t0)
        alert_services.alert_rule_update(rule=one, enabled=False)
        tick(seconds(t0, 10))
        messages = bodies(receiver)
    assert len(messages) == 2
    assert {a["labels"]["alertname"]: a["status"] for a in messages[1]["alerts"]} == {
        "p1-down": "resolved",
        "p2-down": "firing",
    }
