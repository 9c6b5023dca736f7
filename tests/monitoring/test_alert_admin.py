"""Admin for alerting: rules, channels and silences saved through their services (events, same checks as
the API), secrets never shown, bad input as field errors with nothing saved."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from controlplane.events.models import Event
from monitoring.models import AlertRule, NotificationChannel, Silence
from monitoring.services import alerts as alert_services
from tests.monitoring.alert_fixtures import instance_rule, target

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):  # type: ignore[no-untyped-def]
    user = get_user_model().objects.create_superuser("root", "", "pw-for-tests-only")
    client.force_login(user)
    return client


RULE_FORM = {
    "name": "checkout-down",
    "description": "",
    "enabled": "on",
    "target_kind": "service",
    "target": "checkout",
    "match_labels": "{}",
    "metric": "status",
    "comparison": "ge",
    "threshold": "2",
    "for_seconds": "60",
    "keep_firing_for_seconds": "0",
    "severity": "critical",
    "labels": "{}",
    "annotations": "{}",
    "flap_threshold": "5",
    "flap_window_seconds": "600",
    "flap_quiet_seconds": "600",
}


CHANNEL_FORM = {
    "name": "hook",
    "kind": "webhook",
    "url": "https://example.com/am",
    "secret": "",
    "recipients": "[]",
    "enabled": "on",
    "group_by": '["alertname"]',
    "group_wait_seconds": "30",
    "group_interval_seconds": "300",
    "repeat_interval_seconds": "14400",
    "send_resolved": "on",
}


def test_rule_added_in_admin_goes_through_the_service(staff_client) -> None:  # type: ignore[no-untyped-def]
    response = staff_client.post("/admin/monitoring/alertrule/add/", RULE_FORM)
    assert response.status_code == 302, response.content.decode()[:3000]
    rule = AlertRule.objects.get()
    assert rule.for_seconds == 60
    assert Event.objects.get(kind="alert_rule.created").actor == "user:root"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"metric": "latency_p95", "target_kind": "namespace"}, "A namespace rule can watch"),
        ({"labels": '{"1bad": "x"}'}, "is not a label name"),
        ({"target": ""}, "names its target"),
    ],
)
def test_bad_rules_in_admin_are_field_errors(staff_client, change, message) -> None:  # type: ignore[no-untyped-def]
    response = staff_client.post("/admin/monitoring/alertrule/add/", {**RULE_FORM, **change})
    assert response.status_code == 200 and message in response.content.decode()
    assert not AlertRule.objects.exists()


def test_channel_secret_is_never_shown_and_blank_keeps_it(staff_client) -> None:  # type: ignore[no-untyped-def]
    channel = alert_services.notification_channel_create(name="hook", kind="webhook", url="https://example.com/am")
    secret = channel.secret
    page = staff_client.get(f"/admin/monitoring/notificationchannel/{channel.pk}/change/").content.decode()
    assert secret not in page
    response = staff_client.post(
        f"/admin/monitoring/notificationchannel/{channel.pk}/change/",
        {**CHANNEL_FORM, "url": "https://example.com/am2", "group_by": '["service"]'},
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    channel.refresh_from_db()
    assert channel.secret == secret and channel.url.endswith("/am2") and channel.group_by == ["service"]
    bad = staff_client.post(
        f"/admin/monitoring/notificationchannel/{channel.pk}/change/",
        {**CHANNEL_FORM, "url": "http://169.254.169.254/"},
    )
    assert bad.status_code == 200 and "errorlist" in bad.content.decode()
    channel.refresh_from_db()
    assert channel.url.endswith("/am2")
    assert NotificationChannel.objects.count() == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"repeat_interval_seconds": "10"}, "cannot be shorter than the group interval"),
        ({"group_by": '["service", "..."]'}, "it stands alone"),
        ({"group_by": '["bad label"]'}, "A list of label names"),
        ({"group_interval_seconds": "0"}, "Whole seconds from 1"),
    ],
)
def test_bad_channel_grouping_in_admin_is_a_field_error(staff_client, change, message) -> None:  # type: ignore[no-untyped-def]
    response = staff_client.post("/admin/monitoring/notificationchannel/add/", {**CHANNEL_FORM, **change})
    assert response.status_code == 200 and message in response.content.decode()
    assert not NotificationChannel.objects.exists()


def test_silence_admin_creates_and_expires(staff_client) -> None:  # type: ignore[no-untyped-def]
    now = timezone.now()
    form = {
        "matchers": '[{"name": "service", "op": "=", "value": "payments"}]',
        "starts_at_0": now.strftime("%Y-%m-%d"),
        "starts_at_1": now.strftime("%H:%M:%S"),
        "ends_at_0": (now + timedelta(hours=2)).strftime("%Y-%m-%d"),
        "ends_at_1": (now + timedelta(hours=2)).strftime("%H:%M:%S"),
        "author": "root",
        "comment": "db migration",
    }
    response = staff_client.post("/admin/monitoring/silence/add/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    silence = Silence.objects.get()
    bad = staff_client.post(
        "/admin/monitoring/silence/add/", {**form, "matchers": '[{"name": "x", "op": "=~", "value": "(a)\\\\1"}]'}
    )
    assert bad.status_code == 200 and "backreferences are not supported" in bad.content.decode()
    assert Silence.objects.count() == 1
    staff_client.post("/admin/monitoring/silence/", {"action": "expire", "_selected_action": [silence.pk]})
    silence.refresh_from_db()
    assert silence.ends_at <= timezone.now()
    assert Event.objects.filter(kind="silence.expired").count() == 1


def test_alert_and_outbox_pages_render(staff_client) -> None:  # type: ignore[no-untyped-def]
    target("critical")
    channel = alert_services.notification_channel_create(name="mail", kind="email", recipients=["a@example.com"])
    rule = instance_rule(channel)
    alert_services.alert_rule_run(rule_id=rule.pk)
    assert "payments-down" in staff_client.get("/admin/monitoring/alertstate/").content.decode()
    assert "mail" in staff_client.get("/admin/monitoring/notification/").content.decode()
