"""Alert rules end to end through a real local webhook receiver: for, notify once, repeat, resolve,
silences and maintenance windows muting, flapping, grouping, channel kinds and the egress guard."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from controlplane.events.models import Event
from controlplane.events.signing import SIGNATURE_HEADER, verify_signature
from monitoring.models import AlertState, AlertTransition, Notification
from monitoring.services import alerts as alert_services
from monitoring.services import maintenance as maintenance_services
from monitoring.services import silences as silence_services
from registry.models import Instance
from tests.monitoring.alert_fixtures import (
    FAST_GROUPING,
    bodies,
    instance_rule,
    run,
    seconds,
    send_pending,
    set_status,
    target,
    webhook_channel,
)
from tests.receivers import Receiver

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _loopback_receivers_allowed(settings):  # type: ignore[no-untyped-def]
    # The receivers listen on 127.0.0.1: allow-listed, as an operator allow-lists an internal hook target.
    settings.EGRESS_ALLOW_NETWORKS = ["127.0.0.0/8"]


def test_fires_after_for_notifies_once_repeats_and_resolves_with_send_resolved() -> None:
    check = target("critical")
    t0 = timezone.now()
    with Receiver() as receiver:
        channel = webhook_channel(receiver.url)
        rule = instance_rule(channel, for_seconds=60, group_interval_seconds=10, repeat_interval_seconds=60)
        run(rule, t0)
        assert AlertState.objects.get(rule=rule).status == "pending"
        run(rule, seconds(t0, 30))
        assert send_pending() == 0, "nothing is sent while pending"
        run(rule, seconds(t0, 60))
        alert = AlertState.objects.get(rule=rule)
        assert alert.status == "firing"
        assert send_pending() == 1
        # Evaluations and group ticks before the repeat interval send nothing more.
        for offset in (70, 80, 90, 100, 110):
            run(rule, seconds(t0, offset))
        assert send_pending() == 0
        assert len(receiver.requests) == 1
        run(rule, seconds(t0, 120))  # tick at 120: 60 s since the notification = repeat interval
        assert send_pending() == 1
        set_status(check, "passing")
        run(rule, seconds(t0, 125))
        assert AlertState.objects.get(rule=rule).status == "resolved"
        assert send_pending() == 0, "the resolution waits for the group's next tick"
        run(rule, seconds(t0, 130))
        assert send_pending() == 1
        run(rule, seconds(t0, 200))
        run(rule, seconds(t0, 400))
        assert send_pending() == 0
        messages = bodies(receiver)
    assert [m["status"] for m in messages] == ["firing", "firing", "resolved"]
    first = messages[0]
    assert first["version"] == "4" and first["receiver"] == "ops" and first["truncatedAlerts"] == 0
    assert set(first) >= {"groupKey", "groupLabels", "commonLabels", "commonAnnotations", "externalURL", "alerts"}
    (item,) = first["alerts"]
    assert item["labels"]["alertname"] == "payments-down" and item["labels"]["service"] == "payments"
    assert item["annotations"]["summary"] == "payments status 2"
    assert item["endsAt"] == "0001-01-01T00:00:00Z" and item["fingerprint"] == alert.fingerprint
    assert messages[2]["alerts"][0]["status"] == "resolved" and messages[2]["alerts"][0]["endsAt"] != item["endsAt"]
    # Signed like the platform's webhooks.
    request = receiver.requests[0]
    assert verify_signature(channel.secret, request["body"], request["headers"][SIGNATURE_HEADER])
    # Each transition stored and emitted.
    steps = list(AlertTransition.objects.order_by("id").values_list("from_status", "to_status"))
    assert steps == [("inactive", "pending"), ("pending", "firing"), ("firing", "resolved")]
    kinds = list(Event.objects.filter(kind__startswith="alert.").order_by("id").values_list("kind", flat=True))
    assert kinds == ["alert.pending", "alert.firing", "alert.resolved"]


def test_pending_that_clears_before_for_never_notifies() -> None:
    check = target("critical")
    t0 = timezone.now()
    with Receiver() as receiver:
        rule = instance_rule(webhook_channel(receiver.url), for_seconds=60)
        run(rule, t0)
        set_status(check, "passing")
        run(rule, seconds(t0, 30))
        run(rule, seconds(t0, 90))
        send_pending()
        assert receiver.requests == []
    assert AlertState.objects.get(rule=rule).status == "inactive"


def test_keep_firing_for_holds_the_alert_through_a_short_recovery() -> None:
    check = target("critical")
    t0 = timezone.now()
    with Receiver() as receiver:
        rule = instance_rule(webhook_channel(receiver.url), keep_firing_for_seconds=60)
        run(rule, t0)
        send_pending()
        set_status(check, "passing")
        run(rule, seconds(t0, 20))
        assert AlertState.objects.get(rule=rule).status == "firing"
        set_status(check, "critical")
        run(rule, seconds(t0, 40))  # back before keep_firing_for ran out: still the same firing alert
        set_status(check, "passing")
        run(rule, seconds(t0, 50))
        run(rule, seconds(t0, 100))
        assert AlertState.objects.get(rule=rule).status == "firing"
        run(rule, seconds(t0, 111))
        assert AlertState.objects.get(rule=rule).status == "resolved"
        run(rule, seconds(t0, 121))
        send_pending()
        assert [m["status"] for m in bodies(receiver)] == ["firing", "resolved"]


def test_without_send_resolved_the_resolution_is_not_sent() -> None:
    check = target("critical")
    t0 = timezone.now()
    with Receiver() as receiver:
        rule = instance_rule(webhook_channel(receiver.url), send_resolved=False)
        run(rule, t0)
        set_status(check, "passing")
        for offset in (5, 15, 30):
            run(rule, seconds(t0, offset))
        send_pending()
        assert [m["status"] for m in bodies(receiver)] == ["firing"]


@pytest.mark.parametrize(
    "matchers",
    [
        [{"name": "service", "op": "=", "value": "payments"}],
        [{"name": "alertname", "op": "=~", "value": "payments-.*"}, {"name": "severity", "op": "!=", "value": "info"}],
        [{"name": "target", "op": "=", "value": "payments/i-1"}],
    ],
    ids=["label", "regex-and-negation", "target"],
)
def test_an_active_silence_suppresses_until_it_expires(matchers) -> None:  # type: ignore[no-untyped-def]
    target("critical")
    t0 = timezone.now()
    with Receiver() as receiver:
        rule = instance_rule(webhook_channel(receiver.url))
        silence = silence_services.silence_create(
            matchers=matchers,
            starts_at=t0 - timedelta(seconds=1),
            ends_at=t0 + timedelta(hours=1),
            comment="deploy",
            actor="user:ops",
        )
        for offset in (0, 10, 20):
            run(rule, seconds(t0, offset))
        send_pending()
        assert receiver.requests == [], "silenced alerts are not notified"
        assert AlertState.objects.get(rule=rule).status == "firing", "a silence mutes; the alert still fires"
        silence_services.silence_expire(silence=silence, actor="user:ops")
        run(rule, seconds(t0, 30))
        send_pending()
        assert [m["status"] for m in bodies(receiver)] == ["firing"]


def test_a_silence_that_does_not_match_or_has_not_started_suppresses_nothing() -> None:
    target("critical")
    t0 = timezone.now()
    with Receiver() as receiver:
        rule = instance_rule(webhook_channel(receiver.url))
        silence_services.silence_create(
            matchers=[{"name": "service", "op": "=", "value": "billing"}], ends_at=t0 + timedelta(hours=1), comment="x"
        )
        silence_services.silence_create(
            matchers=[{"name": "service", "op": "=", "value": "payments"}],
            starts_at=t0 + timedelta(hours=1),
            ends_at=t0 + timedelta(hours=2),
            comment="later",
        )
        run(rule, t0)
        send_pending()
        assert len(receiver.requests) == 1


@pytest.mark.parametrize("scope", ["service", "instance", "everything", "registry-flag", "recurring"])
def test_a_maintenance_window_suppresses_notifications(scope: str) -> None:
    check = target("critical")
    instance = Instance.objects.get(pk=check.instance_id)
    t0 = timezone.now()
    if scope == "registry-flag":
        Instance.objects.filter(pk=instance.pk).update(maintenance=True)
    elif scope == "recurring":
        # The window starts 5 minutes ago in Tokyo, on that moment's weekday (just after local midnight
        # that is yesterday: the window then spans midnight).
        started = t0.astimezone(__import__("zoneinfo").ZoneInfo("Asia/Tokyo")) - timedelta(minutes=5)
        maintenance_services.maintenance_window_create(
            name="nightly",
            scope="service",
            service=instance.service,
            kind="recurring",
            weekdays=[started.weekday()],
            start_time=started.time().replace(second=0, microsecond=0),
            duration_minutes=60,
            timezone="Asia/Tokyo",
        )
    else:
        maintenance_services.maintenance_window_create(
            name="upgrade",
            scope=scope,
            service=instance.service if scope == "service" else None,
            instance=instance if scope == "instance" else None,
            starts_at=t0 - timedelta(minutes=1),
            ends_at=t0 + timedelta(minutes=30),
        )
    with Receiver() as receiver:
        rule = instance_rule(webhook_channel(receiver.url))
        for offset in (0, 10, 20):
            run(rule, seconds(t0, offset))
        send_pending()
        assert receiver.requests == []


def test_maintenance_window_on_another_service_does_not_suppress() -> None:
    target("critical")
    other = target("passing", service="billing")
    t0 = timezone.now()
    maintenance_services.maintenance_window_create(
        name="billing upgrade",
        scope="service",
        service=other.instance.service,
        starts_at=t0 - timedelta(minutes=1),
        ends_at=t0 + timedelta(minutes=30),
    )
    with Receiver() as receiver:
        rule = instance_rule(webhook_channel(receiver.url))
        run(rule, t0)
        send_pending()
        assert len(receiver.requests) == 1


def test_a_flapping_target_sends_one_notification_then_leaves_after_a_quiet_period() -> None:
    check = target("critical")
    t0 = timezone.now()
    with Receiver() as receiver:
        rule = instance_rule(
            webhook_channel(receiver.url),
            group_wait_seconds=5,
            group_interval_seconds=5,
            repeat_interval_seconds=3600,
            flap_threshold=3,
            flap_window_seconds=120,
            flap_quiet_seconds=60,
        )
        status = "critical"
        for offset in range(0, 60):  # a state change every second for a minute
            run(rule, seconds(t0, offset))
            status = "passing" if status == "critical" else "critical"
            set_status(check, status)
            send_pending()
        alert = AlertState.objects.get(rule=rule)
        assert alert.flapping
        assert len(receiver.requests) == 1, "one notification for the flapping target, not one per change"
        (message,) = bodies(receiver)
        assert message["alerts"][0]["annotations"]["flapping"] == "true"
        assert "flapping" in message["alerts"][0]["annotations"]["summary"]
        assert Event.objects.filter(kind="alert.flapping").count() == 1
        # Stable (critical) for longer than the quiet period: it leaves flapping, reported as plainly firing.
        set_status(check, "critical")
        for offset in range(60, 140, 5):
            run(rule, seconds(t0, offset))
        send_pending()
        alert.refresh_from_db()
        assert not alert.flapping and alert.status == "firing"
        assert Event.objects.filter(kind="alert.flapping_ended").count() == 1
        messages = bodies(receiver)
        assert len(messages) == 2 and "flapping" not in messages[1]["alerts"][0]["annotations"]


def test_alerts_are_grouped_by_labels_within_group_wait() -> None:
    target("critical", service="payments", instance_id="p-1")
    late = target("passing", service="payments", instance_id="p-2")
    target("critical", service="billing", instance_id="b-1")
    t0 = timezone.now()
    with Receiver() as receiver:
        rule = alert_services.alert_rule_create(
            name="any-down",
            target_kind="labels",
            match_labels={"type": "http_api"},
            metric="status",
            comparison="ge",
            threshold=2,
            channels=[
                webhook_channel(receiver.url, group_by=["service"], group_wait_seconds=30, group_interval_seconds=60)
            ],
        )
        run(rule, t0)
        set_status(late, "critical")
        run(rule, seconds(t0, 10))  # joins its group before the group wait is over
        send_pending()
        assert receiver.requests == [], "nothing before group_wait"
        run(rule, seconds(t0, 30))
        send_pending()
        messages = {m["groupLabels"]["service"]: m for m in bodies(receiver)}
    assert set(messages) == {"payments", "billing"}
    assert sorted(a["labels"]["instance"] for a in messages["payments"]["alerts"]) == ["p-1", "p-2"]
    assert messages["payments"]["commonLabels"]["service"] == "payments"
    assert [a["labels"]["instance"] for a in messages["billing"]["alerts"]] == ["b-1"]


def test_slack_and_email_channels(settings) -> None:  # type: ignore[no-untyped-def]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    target("critical")
    with Receiver() as receiver:
        slack = alert_services.notification_channel_create(
            name="chat", kind="slack", url=receiver.url, group_wait_seconds=0
        )
        email = alert_services.notification_channel_create(
            name="mail", kind="email", recipients=["ops@example.com"], group_wait_seconds=0
        )
        alert_services.alert_rule_create(
            name="payments-down",
            target_kind="instance",
            target="payments/i-1",
            metric="status",
            comparison="ge",
            threshold=2,
            annotations={"summary": "<!channel> down"},
            channels=[slack, email],
        )
        alert_services.alert_rules_run()
        send_pending()
        (message,) = bodies(receiver)
    assert message["text"].startswith("*[FIRING:1] payments-down*")
    assert "&lt;!channel&gt; down" in message["text"] and "<!channel>" not in message["text"]
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["ops@example.com"]
    assert "payments-down" in mail.outbox[0].subject and "payments/i-1" in mail.outbox[0].body
    assert set(Notification.objects.values_list("status", flat=True)) == {"delivered"}


def test_egress_guard_applies_when_the_notification_is_sent(settings) -> None:  # type: ignore[no-untyped-def]
    target("critical")
    with Receiver() as receiver:
        rule = instance_rule(webhook_channel(receiver.url))
        settings.EGRESS_ALLOW_NETWORKS = []
        settings.EGRESS_ALLOW_PRIVATE = False  # the production default: loopback refused for notifications
        alert_services.alert_rule_run(rule_id=rule.pk)
        send_pending()
        assert receiver.requests == []
    notification = Notification.objects.get()
    assert notification.status == "failed" and "egress denied" in notification.last_error
    assert Event.objects.filter(kind="notification.failed").count() == 1


def test_receiver_errors_are_retried_with_backoff() -> None:
    target("critical")
    with Receiver(status=503) as receiver:
        rule = instance_rule(webhook_channel(receiver.url))
        alert_services.alert_rule_run(rule_id=rule.pk)
        send_pending()
        notification = Notification.objects.get()
        assert notification.status == "pending" and notification.attempts == 1
        assert notification.next_attempt_at > timezone.now() + timedelta(seconds=5)
        send_pending()  # not due yet: the claim refuses it
        assert len(receiver.requests) == 1
        receiver.status = 200
        Notification.objects.filter(pk=notification.pk).update(next_attempt_at=timezone.now())
        send_pending()
        notification.refresh_from_db()
        assert notification.status == "delivered" and notification.attempts == 2
        assert len(receiver.requests) == 2


def test_disabling_a_rule_resolves_its_alerts_and_stops_notifying() -> None:
    target("critical")
    t0 = timezone.now()
    with Receiver() as receiver:
        rule = instance_rule(webhook_channel(receiver.url), repeat_interval_seconds=10)
        run(rule, t0)
        alert_services.alert_rule_update(rule=rule, enabled=False)
        assert AlertState.objects.get(rule=rule).status == "resolved"
        assert Event.objects.filter(kind="alert.resolved").count() == 1
        assert alert_services.alert_rule_run(rule_id=rule.pk, now=seconds(t0, 60)) is None
        send_pending()
        assert len(receiver.requests) == 1


def test_history_retention_keeps_pending_notifications() -> None:
    check = target("critical")
    t0 = timezone.now()
    rule = instance_rule(
        alert_services.notification_channel_create(name="m", kind="email", recipients=["a@b.example"], **FAST_GROUPING)
    )
    run(rule, t0)
    set_status(check, "passing")
    run(rule, seconds(t0, 10))
    assert AlertTransition.objects.count() == 2 and Notification.objects.count() == 2
    Notification.objects.filter(pk=Notification.objects.order_by("id").first().pk).update(status="delivered")
    removed = alert_services.alert_history_prune(older_than_days=1, now=timezone.now() + timedelta(days=2))
    assert removed == 3
    assert list(Notification.objects.values_list("status", flat=True)) == ["pending"]


def test_maintenance_that_starts_while_firing_holds_back_the_resolution_until_it_ends() -> None:
    check = target("critical")
    t0 = timezone.now()
    with Receiver() as receiver:
        rule = instance_rule(webhook_channel(receiver.url))
        run(rule, t0)
        send_pending()
        # The registry's maintenance flag: the instance's status becomes "maintenance", the alert resolves.
        Instance.objects.filter(pk=check.instance_id).update(maintenance=True, status="maintenance")
        for offset in (10, 20, 30):
            run(rule, seconds(t0, offset))
        assert AlertState.objects.get(rule=rule).status == "resolved"
        send_pending()
        assert [m["status"] for m in bodies(receiver)] == ["firing"], "nothing sent during maintenance"
        Instance.objects.filter(pk=check.instance_id).update(maintenance=False, status="passing")
        run(rule, seconds(t0, 40))
        run(rule, seconds(t0, 50))
        send_pending()
        assert [m["status"] for m in bodies(receiver)] == ["firing", "resolved"]
