"""`manage.py bootstrap` loads a demo alert rule and a console channel, once; the rule fires for the demo
batch worker (whose heartbeat nothing feeds) and its message is sent through the e-mail backend."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from controlplane.events.models import Event
from monitoring.alerting.demo import CHANNEL_NAME, RULE_NAME
from monitoring.models import AlertRule, AlertState, NotificationChannel
from monitoring.services import alerts as alert_services
from registry.models import Check
from tests.monitoring.alert_fixtures import seconds, send_pending, set_status

pytestmark = pytest.mark.django_db


def bootstrap() -> str:
    out = StringIO()
    call_command("bootstrap", stdout=out)
    return out.getvalue()


def test_bootstrap_creates_the_demo_rule_and_channel_once(settings) -> None:  # type: ignore[no-untyped-def]
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    assert "Demo alert rule and channel loaded." in bootstrap()
    events = Event.objects.filter(kind__in=["alert_rule.created", "notification_channel.created"]).count()
    assert events == 2
    bootstrap()
    assert AlertRule.objects.filter(name=RULE_NAME).count() == 1
    assert NotificationChannel.objects.filter(name=CHANNEL_NAME).count() == 1
    assert Event.objects.filter(kind__in=["alert_rule.created", "notification_channel.created"]).count() == 2
    rule = AlertRule.objects.get(name=RULE_NAME)
    channel = NotificationChannel.objects.get(name=CHANNEL_NAME)
    assert list(rule.channels.all()) == [channel] and channel.enabled and channel.kind == "email"
    # An operator's edit survives the next bootstrap.
    alert_services.alert_rule_update(rule=rule, for_seconds=120)
    bootstrap()
    rule.refresh_from_db()
    assert rule.for_seconds == 120


def test_without_a_local_mail_backend_the_demo_channel_is_created_disabled(settings) -> None:  # type: ignore[no-untyped-def]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    bootstrap()
    assert not NotificationChannel.objects.get(name=CHANNEL_NAME).enabled


def test_the_demo_rule_fires_for_the_unfed_demo_worker_and_notifies(settings) -> None:  # type: ignore[no-untyped-def]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    call_command("bootstrap", stdout=StringIO())
    worker = Check.objects.get(instance__service__name="demo-batch-worker")
    set_status(worker, "critical")  # what the TTL check becomes 60 s after start-up
    t0 = timezone.now()
    alert_services.alert_rules_run(now=t0)
    alert = AlertState.objects.get(rule__name=RULE_NAME, status="pending")
    assert alert.labels["service"] == "demo-batch-worker"
    alert_services.alert_rules_run(now=seconds(t0, 30))  # `for` 30 s: firing
    alert_services.alert_rules_run(now=seconds(t0, 35))
    send_pending()
    assert mail.outbox == [], "the channel's group waits 10 s"
    alert_services.alert_rules_run(now=seconds(t0, 40))
    send_pending()
    (message,) = mail.outbox
    assert message.to == ["operator@example.com"] and RULE_NAME in message.subject
    assert "[FIRING] demo-batch-worker/worker-1: critical (status 2) for at least 30 s" in message.body
