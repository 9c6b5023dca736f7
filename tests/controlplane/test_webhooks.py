"""Webhooks: signed deliveries to a real receiver through a real worker, retries, egress guard."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from controlplane.delivery.tasks import deliveries_sweep
from controlplane.events import selectors, services
from controlplane.events.models import DeliveryStatus, Event, WebhookDelivery
from controlplane.events.signing import SIGNATURE_HEADER, sign, verify_signature
from tests.conftest import subprocess_env
from tests.factories import WebhookSubscriptionFactory
from tests.receivers import Receiver


@pytest.fixture(autouse=True)
def _loopback_receivers_allowed(settings):  # type: ignore[no-untyped-def]
    """The receivers here listen on 127.0.0.1: allow-listed explicitly (workers inherit it), as an operator
    allow-lists an internal hook target; the production default refuses loopback (tests below)."""
    settings.EGRESS_ALLOW_NETWORKS = ["127.0.0.0/8"]


def _wait(predicate, timeout: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_signature_round_trip_and_tamper_detection() -> None:
    body = b'{"kind":"x"}'
    header = sign("secret", body)
    assert verify_signature("secret", body, header)
    assert not verify_signature("secret", body + b" ", header)
    assert not verify_signature("other", body, header)
    old = sign("secret", body, timestamp=int(time.time()) - 3600)
    assert not verify_signature("secret", body, old)


@pytest.mark.django_db
def test_metadata_address_is_refused_at_subscription(admin_api) -> None:  # type: ignore[no-untyped-def]
    for url in ("http://169.254.169.254/latest/meta-data/", "http://metadata.google.internal/x", "ftp://127.0.0.1/x"):
        response = admin_api.post("/api/v1/webhooks/", {"name": "bad", "url": url, "kinds": ["*"]}, format="json")
        assert response.status_code == 400, url
        assert "url" in response.json()["errors"]
    assert not services.WebhookSubscription.objects.exists()


@pytest.mark.django_db
def test_secret_is_returned_once_then_never(admin_api) -> None:  # type: ignore[no-untyped-def]
    created = admin_api.post(
        "/api/v1/webhooks/", {"name": "h", "url": "http://127.0.0.1:9/x", "kinds": ["check.*"]}, format="json"
    )
    assert created.status_code == 201 and len(created.json()["secret"]) >= 32
    detail = admin_api.get(f"/api/v1/webhooks/{created.json()['id']}/").json()
    assert "secret" not in detail
    assert created.json()["secret"] not in json.dumps(admin_api.get("/api/v1/events/").json())


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_event_is_delivered_signed_by_a_real_worker(celery_worker_process, admin_api) -> None:  # type: ignore[no-untyped-def]
    with Receiver() as receiver:
        WebhookSubscriptionFactory(url=receiver.url, kinds=["apikey.*"], secret="hook-secret")
        response = admin_api.post(
            "/api/v1/keys/",
            {"name": "svc", "scopes": ["registry:read"]},
            format="json",
            HTTP_X_REQUEST_ID="trace-hook-1",
        )
        assert response.status_code == 201
        requests = receiver.wait_for(1)
        assert len(requests) == 1
        request = requests[0]
        assert verify_signature("hook-secret", request["body"], request["headers"][SIGNATURE_HEADER])
        payload = json.loads(request["body"])
        assert payload["kind"] == "apikey.created" and payload["request_id"] == "trace-hook-1"
        assert response.json()["key"] not in request["body"].decode()
    assert _wait(lambda: WebhookDelivery.objects.filter(status=DeliveryStatus.DELIVERED).count() == 1)
    # The request id reached the worker's log lines for the task the request queued.
    worker_log = celery_worker_process.log_path.read_text()
    # Text lines carry "[trace-hook-1]", JSON lines a request_id field; the format follows LOG_FORMAT.
    traced = ("[trace-hook-1]", '"request_id": "trace-hook-1"')
    assert any(
        "webhook delivery" in line and any(marker in line for marker in traced) for line in worker_log.splitlines()
    ), worker_log[-2000:]


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_receiver_down_is_retried_with_backoff_then_failed(settings) -> None:  # type: ignore[no-untyped-def]
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    settings.WEBHOOK_BACKOFF_BASE_SECONDS = 1
    with Receiver(status=500) as receiver:
        WebhookSubscriptionFactory(url=receiver.url, kinds=["demo.*"])
        with transaction.atomic():
            event = services.emit("demo.happened", subject="x")
        delivery = WebhookDelivery.objects.get(event=event)
        first_due = delivery.next_attempt_at
        services.webhook_delivery_attempt(delivery_id=delivery.pk)
        delivery.refresh_from_db()
        assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 1
        assert delivery.last_status_code == 500 and delivery.last_error == "HTTP 500"
        gap1 = (delivery.next_attempt_at - timezone.now()).total_seconds()
        assert 0 < gap1 <= 1.01
        assert selectors.webhook_deliveries_due() == []  # not due before its backoff
        time.sleep(1.05)
        assert selectors.webhook_deliveries_due() == [delivery.pk]
        services.webhook_delivery_attempt(delivery_id=delivery.pk)
        delivery.refresh_from_db()
        gap2 = (delivery.next_attempt_at - timezone.now()).total_seconds()
        assert 1.0 < gap2 <= 2.01  # exponential: 1 s, then 2 s
        WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
        services.webhook_delivery_attempt(delivery_id=delivery.pk)
        delivery.refresh_from_db()
        assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 3
        assert len(receiver.requests) == 3 and first_due is not None


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_nothing_is_lost_when_the_worker_dies_mid_delivery(tmp_path, settings) -> None:  # type: ignore[no-untyped-def]
    """A worker killed while holding a delivery: its claim expires and the sweep delivers it later."""

    def start_worker(log_name: str):  # type: ignore[no-untyped-def]
        log = open(tmp_path / log_name, "w")  # noqa: SIM115
        from controlplane.commandlines import celery_worker

        proc = subprocess.Popen(
            celery_worker(concurrency=1, name=log_name),
            # A claim of 5 s deadline + 1 s margin, so the test need not wait the default 40 s for it.
            env=subprocess_env(WEBHOOK_TIMEOUT_SECONDS="5", DELIVERY_CLAIM_MARGIN_SECONDS="1"),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        assert _wait(lambda: "ready." in (tmp_path / log_name).read_text(), 40)
        return proc

    from controlplane.celery import app

    app.control.purge()
    with Receiver(delay=30) as receiver:
        WebhookSubscriptionFactory(url=receiver.url, kinds=["demo.*"])
        worker = start_worker("w1")
        try:
            with transaction.atomic():
                event = services.emit("demo.crash", subject="x")
            assert receiver.wait_for(1, timeout=20), "the first worker never attempted the delivery"
            os.killpg(worker.pid, signal.SIGKILL)  # the whole worker dies while the receiver is still answering
            worker.wait()
        finally:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
        delivery = WebhookDelivery.objects.get(event=event)
        assert delivery.status == DeliveryStatus.PENDING and delivery.claimed_until is not None
        receiver.delay = 0
        wait = (delivery.claimed_until - timezone.now()).total_seconds()
        assert 0 < wait <= 6.5, "the claim lasts the deadline plus the margin"
        time.sleep(wait + 0.1)  # the dead worker's claim runs out
        worker2 = start_worker("w2")
        try:
            deliveries_sweep.delay()
            assert _wait(lambda: WebhookDelivery.objects.get(pk=delivery.pk).status == DeliveryStatus.DELIVERED, 30)
        finally:
            worker2.terminate()
            worker2.wait(15)
    assert Event.objects.filter(kind="demo.crash").count() == 1
    assert timezone.now() - WebhookDelivery.objects.get(pk=delivery.pk).delivered_at < timedelta(minutes=1)


PRIVATE_HOOKS = [
    "http://127.0.0.1:9/x",
    "http://[::1]/x",
    "http://[::ffff:127.0.0.1]/x",
    "http://[::ffff:7f00:1]/x",
    "http://10.0.0.5/x",
    "http://192.168.1.10/x",
    "http://172.20.0.1/x",
    "http://100.64.1.1/x",
    "http://[fd00::1]/x",
    "http://[64:ff9b::a00:1]/x",
    "http://[2002:7f00:1::1]/x",
]
METADATA_HOOKS = [
    "http://100.100.100.200/latest/meta-data/",
    "http://192.0.0.192/opc/v2/instance/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/",
    "http://[::a9fe:a9fe]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[2002:a9fe:a9fe::1]/",
    "http://[2001:0:4136:e378:8000:63bf:5601:5601]/",
]


@pytest.mark.django_db
def test_private_targets_are_refused_at_subscription_in_production(settings, admin_api) -> None:  # type: ignore[no-untyped-def]
    settings.EGRESS_ALLOW_PRIVATE, settings.EGRESS_ALLOW_NETWORKS = False, []
    for url in PRIVATE_HOOKS + METADATA_HOOKS:
        response = admin_api.post("/api/v1/webhooks/", {"name": "bad", "url": url, "kinds": ["*"]}, format="json")
        assert response.status_code == 400, url
        assert response["Content-Type"].startswith("application/problem+json")
        assert "url" in response.json()["errors"], url
    assert not services.WebhookSubscription.objects.exists()
    settings.EGRESS_ALLOW_NETWORKS = ["10.0.0.0/8"]  # an operator's allow-list admits exactly its networks
    ok = admin_api.post("/api/v1/webhooks/", {"name": "ok", "url": "http://10.0.0.5/x", "kinds": ["*"]}, format="json")
    assert ok.status_code == 201
    still = admin_api.post("/api/v1/webhooks/", {"name": "no", "url": PRIVATE_HOOKS[0], "kinds": ["*"]}, format="json")
    assert still.status_code == 400


@pytest.mark.django_db
def test_embedded_default_admits_private_hooks_but_never_metadata(settings, admin_api) -> None:  # type: ignore[no-untyped-def]
    settings.EGRESS_ALLOW_PRIVATE, settings.EGRESS_ALLOW_NETWORKS = True, []
    for index, url in enumerate(PRIVATE_HOOKS):
        response = admin_api.post("/api/v1/webhooks/", {"name": f"h{index}", "url": url, "kinds": ["*"]}, format="json")
        assert response.status_code == 201, url
    for url in METADATA_HOOKS:
        response = admin_api.post("/api/v1/webhooks/", {"name": "bad", "url": url, "kinds": ["*"]}, format="json")
        assert response.status_code == 400, url


@pytest.mark.django_db
def test_admin_form_refuses_private_hooks_in_production(settings, admin_client) -> None:  # type: ignore[no-untyped-def]
    settings.EGRESS_ALLOW_PRIVATE, settings.EGRESS_ALLOW_NETWORKS = False, []
    response = admin_client.post(
        "/admin/events/webhooksubscription/add/",
        {"name": "bad", "url": "http://[::ffff:127.0.0.1]/x", "kinds": '["*"]', "secret": "", "active": "on"},
    )
    assert response.status_code == 200 and "private network" in response.content.decode()
    assert not services.WebhookSubscription.objects.exists()


@pytest.mark.django_db
def test_delivery_to_loopback_is_refused_in_production_and_never_connects(settings) -> None:  # type: ignore[no-untyped-def]
    """A subscription stored before the policy (or by a bypass) is still refused at send time."""
    settings.EGRESS_ALLOW_PRIVATE, settings.EGRESS_ALLOW_NETWORKS = False, []
    with Receiver() as receiver:
        for host in ("127.0.0.1", "[::ffff:127.0.0.1]", "localhost"):
            subscription = WebhookSubscriptionFactory(url=receiver.url.replace("127.0.0.1", host), kinds=["demo.*"])
            event = Event.objects.create(kind="demo.happened", actor="test", subject=host)
            delivery = WebhookDelivery.objects.create(
                subscription=subscription, event=event, next_attempt_at=timezone.now()
            )
            assert services.webhook_delivery_attempt(delivery_id=delivery.pk) == DeliveryStatus.FAILED
            delivery.refresh_from_db()
            assert delivery.last_error.startswith("egress denied"), delivery.last_error
            subscription.delete()
        assert receiver.requests == []


def _admin_user_name(admin_client) -> str:  # type: ignore[no-untyped-def]
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(is_superuser=True).get_username()


@pytest.mark.django_db
def test_admin_delete_goes_through_the_service(admin_client) -> None:  # type: ignore[no-untyped-def]
    subscription = WebhookSubscriptionFactory(name="gone")
    response = admin_client.post(f"/admin/events/webhooksubscription/{subscription.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not services.WebhookSubscription.objects.filter(pk=subscription.pk).exists()
    event = Event.objects.get(kind="webhook.deleted")
    assert event.subject == "gone" and event.actor == f"user:{_admin_user_name(admin_client)}"


@pytest.mark.django_db
def test_admin_bulk_delete_goes_through_the_service(admin_client) -> None:  # type: ignore[no-untyped-def]
    doomed = [WebhookSubscriptionFactory(name=f"bulk-{n}") for n in range(3)]
    kept = WebhookSubscriptionFactory(name="kept")
    response = admin_client.post(
        "/admin/events/webhooksubscription/",
        {"action": "delete_selected", "_selected_action": [s.pk for s in doomed], "post": "yes"},
    )
    assert response.status_code == 302
    assert list(services.WebhookSubscription.objects.values_list("name", flat=True)) == [kept.name]
    deleted = Event.objects.filter(kind="webhook.deleted")
    assert sorted(deleted.values_list("subject", flat=True)) == ["bulk-0", "bulk-1", "bulk-2"]
    assert set(deleted.values_list("actor", flat=True)) == {f"user:{_admin_user_name(admin_client)}"}
