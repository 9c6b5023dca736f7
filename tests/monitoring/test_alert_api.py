"""Alerting API: rules, silences, channels and alerts — scopes, masking, and bad input answered with
400 problem+json field errors that change nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from controlplane.events.models import Event
from monitoring.models import AlertRule, NotificationChannel, Silence
from monitoring.services import alerts as alert_services
from tests.monitoring.alert_fixtures import instance_rule, target

pytestmark = pytest.mark.django_db

RULES = "/api/v1/alerts/rules/"
SILENCES = "/api/v1/alerts/silences/"
CHANNELS = "/api/v1/alerts/channels/"

GOOD_RULE = {
    "name": "checkout-latency",
    "target_kind": "service",
    "target": "checkout",
    "metric": "latency_p95",
    "comparison": "gt",
    "threshold": 250,
    "for_seconds": 120,
    "severity": "warning",
    "labels": {"team": "payments"},
    "annotations": {"summary": "p95 {{ value }} ms"},
}


def _problem(response, *fields: str) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == 400, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    body = response.json()
    for field in fields:
        assert field in body["errors"], body
    return body


def test_rule_create_read_update_delete(client_for) -> None:  # type: ignore[no-untyped-def]
    api = client_for("monitoring:read", "monitoring:write")
    alert_services.notification_channel_create(name="ops", kind="email", recipients=["ops@example.com"])
    created = api.post(RULES, {**GOOD_RULE, "channels": ["ops"]}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["channels"] == ["ops"] and "group_wait_seconds" not in body
    detail = f"{RULES}{body['id']}/"
    changed = api.patch(detail, {"threshold": 300, "enabled": False}, format="json")
    assert changed.status_code == 200 and changed.json()["threshold"] == 300 and changed.json()["enabled"] is False
    assert api.get(RULES).json()["count"] == 1
    assert api.delete(detail).status_code == 204
    assert not AlertRule.objects.exists()
    kinds = list(Event.objects.filter(kind__startswith="alert_rule.").values_list("kind", flat=True))
    assert sorted(kinds) == ["alert_rule.created", "alert_rule.deleted", "alert_rule.updated"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"metric": "cpu"}, "metric"),
        ({"target_kind": "namespace", "target": "shop", "metric": "latency_p95"}, "metric"),
        ({"target_kind": "galaxy"}, "target_kind"),
        ({"target": ""}, "target"),
        ({"target_kind": "instance", "target": "no-slash"}, "target"),
        ({"target_kind": "labels", "target": "", "match_labels": {}}, "match_labels"),
        ({"match_labels": {"tag": "x"}}, "match_labels"),
        ({"comparison": "between"}, "comparison"),
        ({"severity": "apocalyptic"}, "severity"),
        ({"for_seconds": -5}, "for_seconds"),
        ({"for_seconds": 10**9}, "for_seconds"),
        ({"group_interval_seconds": 300}, "group_interval_seconds"),  # the channel's now
        ({"labels": {"1bad": "x"}}, "labels"),
        ({"labels": {"team": 5}}, "labels"),
        ({"labels": ["team"]}, "labels"),
        ({"annotations": {"summary": {"nested": 1}}}, "annotations"),
        ({"group_by": ["service"]}, "group_by"),
        ({"threshold": "high"}, "threshold"),
        ({"channels": ["nowhere"]}, "channels"),
        ({"flap_threshold": 5000}, "flap_threshold"),
    ],
)
def test_bad_rules_are_refused_with_field_errors_and_change_nothing(client_for, change, field) -> None:  # type: ignore[no-untyped-def]
    api = client_for("monitoring:write")
    before = Event.objects.count()
    _problem(api.post(RULES, {**GOOD_RULE, **change}, format="json"), field)
    assert not AlertRule.objects.exists() and Event.objects.count() == before
    rule = instance_rule(None)
    _problem(api.patch(f"{RULES}{rule.pk}/", change, format="json"), field)
    rule.refresh_from_db()
    assert rule.name == "payments-down" and rule.metric == "status" and rule.threshold == 2


def test_duplicate_rule_name_is_a_field_error(client_for) -> None:  # type: ignore[no-untyped-def]
    api = client_for("monitoring:write")
    assert api.post(RULES, GOOD_RULE, format="json").status_code == 201
    _problem(api.post(RULES, GOOD_RULE, format="json"), "name")
    assert AlertRule.objects.count() == 1


def test_scopes(client_for) -> None:  # type: ignore[no-untyped-def]
    reader = client_for("monitoring:read")
    assert reader.get(RULES).status_code == 200
    assert reader.post(RULES, GOOD_RULE, format="json").status_code == 403
    assert reader.post(SILENCES, {}, format="json").status_code == 403
    writer = client_for("monitoring:write")
    assert (
        writer.post(
            CHANNELS, {"name": "x", "kind": "email", "recipients": ["a@example.com"]}, format="json"
        ).status_code
        == 403
    )
    assert client_for("registry:read").get("/api/v1/alerts/").status_code == 403
    assert not NotificationChannel.objects.exists()


def test_silence_lifecycle(client_for) -> None:  # type: ignore[no-untyped-def]
    api = client_for("monitoring:read", "monitoring:write")
    now = timezone.now()
    body = {
        "matchers": [{"name": "service", "op": "=", "value": "payments"}],
        "ends_at": (now + timedelta(hours=1)).isoformat(),
        "comment": "deploy",
    }
    created = api.post(SILENCES, body, format="json")
    assert created.status_code == 201, created.content
    silence = created.json()
    assert silence["state"] == "active" and silence["author"].startswith("key:")
    later = api.post(
        SILENCES,
        {
            **body,
            "starts_at": (now + timedelta(hours=2)).isoformat(),
            "ends_at": (now + timedelta(hours=3)).isoformat(),
        },
        format="json",
    )
    assert later.json()["state"] == "pending"
    assert [s["id"] for s in api.get(f"{SILENCES}?state=pending").json()["results"]] == [later.json()["id"]]
    expired = api.delete(f"{SILENCES}{silence['id']}/")
    assert expired.status_code == 200 and expired.json()["state"] == "expired"
    _problem(api.patch(f"{SILENCES}{silence['id']}/", {"comment": "again"}, format="json"), "ends_at")
    _problem(api.get(f"{SILENCES}?state=forever"), "state")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"matchers": []}, "matchers"),
        ({"matchers": "service=payments"}, "matchers"),
        ({"matchers": [{"name": "service", "op": "~=", "value": "x"}]}, "matchers"),
        ({"matchers": [{"name": "9lives", "op": "=", "value": "x"}]}, "matchers"),
        ({"matchers": [{"name": "service", "op": "=~", "value": "(a)\\1"}]}, "matchers"),
        ({"matchers": [{"name": "service", "op": "=~", "value": "(unclosed"}]}, "matchers"),
        ({"matchers": [{"name": "service", "op": "=~", "value": ".*"}]}, "matchers"),
        ({"matchers": [{"name": "service", "op": "=", "value": "x", "extra": 1}]}, "matchers"),
        ({"ends_at": "yesterday"}, "ends_at"),
        ({"starts_at": "2030-01-02T00:00:00Z", "ends_at": "2030-01-01T00:00:00Z"}, "ends_at"),
        ({"comment": ""}, "comment"),
    ],
)
def test_bad_silences_are_refused_and_change_nothing(client_for, change, field) -> None:  # type: ignore[no-untyped-def]
    api = client_for("monitoring:write")
    body = {
        "matchers": [{"name": "service", "op": "=", "value": "payments"}],
        "ends_at": (timezone.now() + timedelta(hours=1)).isoformat(),
        "comment": "deploy",
        **change,
    }
    _problem(api.post(SILENCES, body, format="json"), field)
    assert not Silence.objects.exists()


def test_channels_need_admin_mask_the_url_and_show_the_secret_once(admin_api) -> None:  # type: ignore[no-untyped-def]
    created = admin_api.post(
        CHANNELS,
        {"name": "chat", "kind": "slack", "url": "https://hooks.example.com/services/T0/B0/SECRETPATH"},
        format="json",
    )
    assert created.status_code == 201, created.content
    assert "SECRETPATH" not in created.content.decode() and created.json()["url"] == "https://hooks.example.com/…"
    hook = admin_api.post(
        CHANNELS, {"name": "hook", "kind": "webhook", "url": "https://receiver.example.com/am"}, format="json"
    )
    secret = hook.json()["secret"]
    assert len(secret) >= 32
    listing = admin_api.get(CHANNELS).content.decode()
    assert secret not in listing and "SECRETPATH" not in listing
    events = "".join(str(data) for data in Event.objects.values_list("data", flat=True))
    assert secret not in events and "SECRETPATH" not in events


EMAIL = {"kind": "email", "recipients": ["ops@example.com"]}


def test_channel_grouping_is_set_and_read_through_the_api(admin_api) -> None:  # type: ignore[no-untyped-def]
    created = admin_api.post(CHANNELS, {"name": "mail", **EMAIL}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["group_by"] == ["alertname"] and body["send_resolved"] is True
    assert (body["group_wait_seconds"], body["group_interval_seconds"], body["repeat_interval_seconds"]) == (
        30,
        300,
        14400,
    )
    changed = admin_api.patch(
        f"{CHANNELS}{body['id']}/",
        {"group_by": ["team"], "group_wait_seconds": 10, "send_resolved": False},
        format="json",
    )
    assert changed.status_code == 200, changed.content
    channel = NotificationChannel.objects.get()
    assert (channel.group_by, channel.group_wait_seconds, channel.send_resolved) == (["team"], 10, False)
    refused = admin_api.patch(f"{CHANNELS}{body['id']}/", {"repeat_interval_seconds": 5}, format="json")
    _problem(refused, "repeat_interval_seconds")
    channel.refresh_from_db()
    assert channel.repeat_interval_seconds == 14400


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "webhook", "url": "http://169.254.169.254/latest/meta-data/"}, "url"),
        ({"kind": "webhook", "url": "http://metadata.google.internal/x"}, "url"),
        ({"kind": "webhook", "url": "ftp://example.com/x"}, "url"),
        ({"kind": "webhook"}, "url"),
        ({"kind": "slack", "url": "http://[fe80::1]/hook"}, "url"),
        ({"kind": "email", "recipients": []}, "recipients"),
        ({"kind": "email", "recipients": ["not-an-address"]}, "recipients"),
        ({"kind": "email", "recipients": ["a@example.com"], "url": "https://example.com"}, "url"),
        ({"kind": "pager"}, "kind"),
        ({**EMAIL, "group_by": "service"}, "group_by"),
        ({**EMAIL, "group_by": ["bad label"]}, "group_by"),
        ({**EMAIL, "group_by": ["...", "service"]}, "group_by"),
        ({**EMAIL, "group_interval_seconds": 0}, "group_interval_seconds"),
        ({**EMAIL, "group_wait_seconds": -1}, "group_wait_seconds"),
        ({**EMAIL, "group_interval_seconds": 600, "repeat_interval_seconds": 60}, "repeat_interval_seconds"),
        ({**EMAIL, "send_resolved": "perhaps"}, "send_resolved"),
    ],
)
def test_bad_channels_are_refused_and_change_nothing(admin_api, body, field) -> None:  # type: ignore[no-untyped-def]
    _problem(admin_api.post(CHANNELS, {"name": "bad", **body}, format="json"), field)
    assert not NotificationChannel.objects.exists()


def test_private_channel_urls_are_refused_in_production_policy(admin_api, settings) -> None:  # type: ignore[no-untyped-def]
    settings.EGRESS_ALLOW_PRIVATE = False
    settings.EGRESS_ALLOW_NETWORKS = []
    for url in ("http://127.0.0.1:9/x", "http://10.0.0.5/x", "http://[::ffff:127.0.0.1]/x"):
        _problem(admin_api.post(CHANNELS, {"name": "bad", "kind": "webhook", "url": url}, format="json"), "url")
    assert not NotificationChannel.objects.exists()


def test_alert_list_and_status_filter(client_for) -> None:  # type: ignore[no-untyped-def]
    target("critical")
    rule = instance_rule(None)
    alert_services.alert_rule_run(rule_id=rule.pk)
    api = client_for("monitoring:read")
    (alert,) = api.get("/api/v1/alerts/?status=firing").json()["results"]
    assert alert["rule"] == "payments-down" and alert["state"] == "firing" and alert["labels"]["instance"] == "i-1"
    assert api.get("/api/v1/alerts/?status=pending").json()["count"] == 0
    _problem(api.get("/api/v1/alerts/?status=burning"), "status")
