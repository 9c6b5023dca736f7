"""The notification outbox on the delivery engine: a worker killed after claiming still delivers exactly
once after recovery, two workers never send one notification twice, one evaluator per rule, event-driven
evaluation through a real worker, and the alert gauges on /metrics."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
from django.db import connection, transaction
from django.utils import timezone

from controlplane.delivery.selectors import deliveries_due
from controlplane.delivery.services import delivery_attempt
from controlplane.observability.metrics import render_metrics
from monitoring.alerting.evaluation import rule_claim, rule_release
from monitoring.models import AlertState, Notification
from monitoring.services import alerts as alert_services
from registry.models import Check
from registry.services.state import instances_refresh_status
from tests.conftest import subprocess_env
from tests.monitoring.alert_fixtures import instance_rule, target, webhook_channel
from tests.receivers import Receiver


@pytest.fixture(autouse=True)
def _loopback_receivers_allowed(settings):  # type: ignore[no-untyped-def]
    settings.EGRESS_ALLOW_NETWORKS = ["127.0.0.0/8"]


# A worker that dies the moment it would send: after the claim, before a byte leaves.
DIE_AFTER_CLAIM = """
import os, signal, sys
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
django.setup()
from controlplane.delivery import services, transport
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
transport.send = die
services.delivery_attempt(kind="notification", delivery_id=int(sys.argv[1]))
"""


def _pending_notification(receiver: Receiver) -> Notification:
    target("critical")
    rule = instance_rule(webhook_channel(receiver.url))
    alert_services.alert_rule_run(rule_id=rule.pk)
    return Notification.objects.get()


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_after_claiming_still_delivers_exactly_once_after_recovery(settings) -> None:  # type: ignore[no-untyped-def]
    # This process and the doomed worker agree on a 2 s claim (1 s deadline + 1 s margin).
    settings.MONITORING_NOTIFICATION_TIMEOUT_SECONDS = 1
    settings.DELIVERY_CLAIM_MARGIN_SECONDS = 1
    with Receiver() as receiver:
        notification = _pending_notification(receiver)
        child = subprocess.run(  # noqa: S603 - our own interpreter and script
            [sys.executable, "-c", DIE_AFTER_CLAIM, str(notification.pk)],
            env=subprocess_env(MONITORING_NOTIFICATION_TIMEOUT_SECONDS="1", DELIVERY_CLAIM_MARGIN_SECONDS="1"),
            capture_output=True,
            timeout=60,
        )
        assert child.returncode == -9, child.stderr.decode()[-2000:]
        notification.refresh_from_db()
        assert notification.status == "pending" and notification.attempts == 0
        assert notification.claimed_until is not None and receiver.requests == []
        # While the dead worker's claim lasts, nobody else sends it (it might still be mid-request).
        assert delivery_attempt(kind="notification", delivery_id=notification.pk) is None
        assert deliveries_due(kind="notification") == []
        wait = (notification.claimed_until - timezone.now()).total_seconds()
        assert wait <= 2.5, "the claim lasts the notification deadline plus the margin"
        time.sleep(max(wait, 0) + 0.1)
        # Recovery: the engine's sweep finds it due again and a live worker sends it.
        assert deliveries_due(kind="notification") == [notification.pk]
        for pk in deliveries_due(kind="notification"):
            delivery_attempt(kind="notification", delivery_id=pk)
        assert receiver.wait_for(1) and len(receiver.requests) == 1
        # Settled: further sweeps and attempts send nothing.
        assert deliveries_due(kind="notification") == []
        assert delivery_attempt(kind="notification", delivery_id=notification.pk) is None
        time.sleep(0.3)
        assert len(receiver.requests) == 1
    notification.refresh_from_db()
    assert notification.status == "delivered" and notification.attempts == 1


@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_for_one_notification_send_it_once() -> None:
    with Receiver(delay=0.5) as receiver:
        notification = _pending_notification(receiver)
        outcomes: list[object] = []
        start = threading.Barrier(4)

        def worker() -> None:
            try:
                start.wait()
                outcomes.append(delivery_attempt(kind="notification", delivery_id=notification.pk))
            finally:
                connection.close()

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        time.sleep(0.2)
        assert len(receiver.requests) == 1
    assert sorted(o is None for o in outcomes) == [False, True, True, True]
    assert Notification.objects.get(pk=notification.pk).status == "delivered"


@pytest.mark.django_db
def test_a_rule_is_evaluated_by_one_worker_at_a_time() -> None:
    target("critical")
    rule = instance_rule(None)
    claim = rule_claim(rule_id=rule.pk)
    assert claim is not None
    assert rule_claim(rule_id=rule.pk) is None
    assert alert_services.alert_rule_run(rule_id=rule.pk) is None, "held elsewhere: skipped"
    assert alert_services.alert_rules_run()["skipped"] == 1
    assert not AlertState.objects.exists()
    rule_release(rule_id=rule.pk, claim=claim, now=timezone.now())
    assert alert_services.alert_rule_run(rule_id=rule.pk) is not None
    assert AlertState.objects.get().status == "firing"


@pytest.mark.django_db
def test_an_expired_claim_of_a_dead_evaluator_is_taken_over() -> None:
    from monitoring.models import AlertRule

    target("critical")
    rule = instance_rule(None)
    AlertRule.objects.filter(pk=rule.pk).update(evaluating_until=timezone.now() - timezone.timedelta(seconds=1))
    assert alert_services.alert_rule_run(rule_id=rule.pk) is not None


@pytest.mark.django_db(transaction=True)
def test_a_stored_status_transition_is_evaluated_and_notified_by_a_real_worker(celery_worker_process) -> None:  # type: ignore[no-untyped-def]
    check = target("passing")
    with Receiver() as receiver:
        instance_rule(webhook_channel(receiver.url))
        # The registry's own path: check state stored, the instance aggregate recomputed, events emitted.
        with transaction.atomic():
            Check.objects.filter(pk=check.pk).update(status="critical")
            instances_refresh_status(instance_ids={check.instance_id})
        assert receiver.wait_for(1, timeout=30), celery_worker_process.log_path.read_text()[-3000:]
        message = receiver.requests[0]
    assert b'"status":"firing"' in message["body"]
    assert AlertState.objects.get().status == "firing"


@pytest.mark.django_db
def test_metrics_expose_alert_states_by_rule_and_severity() -> None:
    target("critical")
    rule = instance_rule(None, severity="warning")
    alert_services.alert_rule_run(rule_id=rule.pk)
    text = render_metrics()[0].decode()
    assert 'monitoring_alerts{rule="payments-down",severity="warning",state="firing"} 1.0' in text
    assert 'monitoring_alerts{rule="payments-down",severity="warning",state="pending"} 0.0' in text


@pytest.mark.django_db
def test_event_driven_evaluation_retries_a_held_rule_then_leaves_it_to_beat() -> None:
    from monitoring.tasks import alerts_evaluate_status

    target("critical")
    rule = instance_rule(None)
    claim = rule_claim(rule_id=rule.pk)
    result = alerts_evaluate_status.apply()
    assert result.successful(), result.traceback
    assert result.get()["skipped"] == 1
    rule_release(rule_id=rule.pk, claim=claim, now=timezone.now())
    assert alerts_evaluate_status.apply().get() == {"rules": 1, "skipped": 0, "transitions": 1}


@pytest.mark.django_db
def test_a_burst_of_transitions_in_one_transaction_queues_one_evaluation(
    monkeypatch, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    from controlplane.events.services import emit
    from monitoring.tasks import alerts_evaluate_status

    queued: list[int] = []
    monkeypatch.setattr(alerts_evaluate_status, "delay", lambda: queued.append(1))
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            for i in range(200):
                emit("check.status_changed", subject=f"svc/i/{i}", data={"old": "passing", "new": "critical"})
            emit("config.changed", subject="shop")
    assert queued == [1]
    with django_capture_on_commit_callbacks(execute=True):
        emit("pipeline.changed", subject="orders")  # not a status transition: nothing queued
    assert queued == [1]
