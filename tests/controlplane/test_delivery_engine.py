"""The one delivery engine (controlplane/delivery): total deadlines against real dripping servers, claims
that outlive the attempt, typed errors (policy denial final, DNS and network retried), both kinds on it."""

from __future__ import annotations

import socket
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import Client
from django.utils import timezone

from controlplane.delivery import services as engine
from controlplane.delivery.errors import DeliveryDeadlineExceeded, DeliveryDenied, DeliveryDNSError
from controlplane.delivery.kinds import DELIVERY_KINDS, delivery_model
from controlplane.delivery.messages import OutboundRequest
from controlplane.delivery.models import OutboundDelivery
from controlplane.delivery.selectors import deliveries_due
from controlplane.delivery.transport import send
from controlplane.egress import Purpose
from controlplane.events.models import Event, WebhookDelivery
from pipelines.models import Delivery
from tests.factories import WebhookSubscriptionFactory
from tests.pipelines.factories import PipelineFactory


class Dripper:
    """A real TCP server that answers so slowly that no single read ever times out.

    `mode`: `headers` trickles the status line and headers one byte per `every` seconds, forever;
    `body` sends complete headers (Content-Length 100000) then one body byte per `every` seconds;
    `silent` reads the request and never answers. Records each connection's delivery id header and
    how long the client stayed.
    """

    def __init__(self, mode: str, every: float = 0.5) -> None:
        self.mode, self.every = mode, every
        self.connections = 0
        self.active: dict[str, int] = {}
        self.max_active_per_delivery = 0
        self.durations: list[float] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"

    def __enter__(self) -> Dripper:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        started = time.monotonic()
        delivery = ""
        with self._lock:
            self.connections += 1
        try:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                request += chunk
            lines = request.split(b"\r\n")
            delivery = lines[0].split(b" ")[1].decode()  # the path tells the kinds apart (ids may coincide)
            for line in lines:
                if line.lower().startswith(b"x-controlplane-delivery:"):
                    delivery += "#" + line.split(b":", 1)[1].strip().decode()
            with self._lock:
                self.active[delivery] = self.active.get(delivery, 0) + 1
                self.max_active_per_delivery = max(self.max_active_per_delivery, self.active[delivery])
            if self.mode == "body":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
            trickle = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"y" * 100000
            position = 0
            while not self._stop.is_set():
                if self.mode == "headers":
                    conn.sendall(trickle[position : position + 1])
                    position += 1
                elif self.mode == "body":
                    conn.sendall(b"x")
                elif conn.recv(1) == b"":  # silent: nothing sent; wait for the client to close
                    break
                time.sleep(self.every)
        except OSError:
            pass  # the client went away: its deadline ended the exchange
        finally:
            with self._lock:
                if delivery in self.active:
                    self.active[delivery] -= 1
                self.durations.append(time.monotonic() - started)
            conn.close()


@pytest.mark.parametrize("mode", ["headers", "body", "silent"])
def test_the_request_ends_at_its_total_deadline_whatever_the_target_does(mode: str) -> None:
    with Dripper(mode, every=0.3) as dripper:
        started = time.monotonic()
        with pytest.raises(DeliveryDeadlineExceeded):
            send(OutboundRequest(dripper.url, b"{}"), purpose=Purpose.PROBE, deadline=1.5)
        elapsed = time.monotonic() - started
        # Each read gets a byte every 0.3 s, so only a deadline over the whole exchange ends it.
        assert 1.4 <= elapsed < 2.5, elapsed
        deadline = time.monotonic() + 3
        while not dripper.durations and time.monotonic() < deadline:
            time.sleep(0.05)
        assert dripper.durations and dripper.durations[0] < 2.5, "the connection was closed at the deadline"


def test_a_name_that_does_not_resolve_is_a_dns_error_not_a_denial() -> None:
    with pytest.raises(DeliveryDNSError) as caught:
        send(OutboundRequest("http://nonexistent.invalid/hook", b"{}"), purpose=Purpose.WEBHOOK, deadline=5)
    assert not caught.value.final


@pytest.mark.parametrize(
    ("url", "allow_private"),
    [
        ("http://169.254.169.254/latest/meta-data/", True),  # metadata: denied for every purpose
        ("http://metadata.google.internal/x", True),
        ("http://127.0.0.1:9/x", False),  # loopback in production
        ("http://localhost:9/x", False),  # a name that resolves to loopback
        ("ftp://example.com/x", True),
    ],
)
def test_an_egress_denial_is_a_final_error(settings, url: str, allow_private: bool) -> None:  # type: ignore[no-untyped-def]
    settings.EGRESS_ALLOW_PRIVATE, settings.EGRESS_ALLOW_NETWORKS = allow_private, []
    with pytest.raises(DeliveryDenied) as caught:
        send(OutboundRequest(url, b"{}"), purpose=Purpose.WEBHOOK, deadline=5)
    assert caught.value.final and str(caught.value).startswith("egress denied")


def test_both_kinds_and_only_they_are_registered_on_the_one_engine() -> None:
    assert DELIVERY_KINDS["webhook"] == "events.WebhookDelivery" and DELIVERY_KINDS["pipeline"] == "pipelines.Delivery"
    assert delivery_model("webhook") is WebhookDelivery and delivery_model("pipeline") is Delivery
    for kind in DELIVERY_KINDS:  # any other kind (alert notifications) is an engine model of that kind too
        assert issubclass(delivery_model(kind), OutboundDelivery) and delivery_model(kind).delivery_kind == kind
    for model in (WebhookDelivery, Delivery):
        assert issubclass(model, OutboundDelivery)
        # One backoff rule and one cap for every kind.
        assert engine.backoff_seconds(model, 40) == 3600
    assert WebhookDelivery.egress_purpose is Purpose.WEBHOOK and Delivery.egress_purpose is Purpose.DELIVERY


def _webhook(url: str, **fields: object) -> WebhookDelivery:
    subscription = WebhookSubscriptionFactory(url=url, kinds=["demo.*"])
    event = Event.objects.create(kind="demo.happened", actor="test", subject="s")
    return WebhookDelivery.objects.create(
        subscription=subscription, event=event, next_attempt_at=timezone.now(), **fields
    )


def _pipeline_delivery(address: str, port: int) -> Delivery:
    from registry.services import instance_register, service_create

    service = service_create(name=f"svc-{address[:10]}-{port}", actor="test")
    instance_register(
        service=service, instance_id="i-1", address=address, port=port, metadata={"pipeline_path": "/in"}, actor="test"
    )
    pipeline = PipelineFactory(slug=f"p-{port}")
    return Delivery.objects.create(
        pipeline=pipeline, service=service.name, packet={"payload": 1}, next_attempt_at=timezone.now()
    )


def _make(kind: str, dripper: Dripper) -> OutboundDelivery:
    return _webhook(dripper.url) if kind == "webhook" else _pipeline_delivery("127.0.0.1", dripper.port)


@pytest.fixture
def short_deadlines(settings):  # type: ignore[no-untyped-def]
    settings.EGRESS_ALLOW_NETWORKS = ["127.0.0.0/8"]
    settings.WEBHOOK_TIMEOUT_SECONDS = 2
    settings.PIPELINE_DELIVERY_TIMEOUT_SECONDS = 2.0
    settings.DELIVERY_CLAIM_MARGIN_SECONDS = 3
    return settings


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["webhook", "pipeline"])
def test_a_delivery_is_not_sent_twice_while_its_attempt_runs(short_deadlines, kind: str) -> None:  # type: ignore[no-untyped-def]
    with Dripper("body", every=0.3) as dripper:
        delivery = _make(kind, dripper)
        model = type(delivery)
        outcomes: list[object] = []
        first = threading.Thread(
            target=lambda: outcomes.append(engine.delivery_attempt(kind=kind, delivery_id=delivery.pk))
        )
        started = time.monotonic()
        first.start()
        while dripper.connections == 0 and time.monotonic() - started < 5:
            time.sleep(0.05)
        assert dripper.connections == 1
        row = model._default_manager.get(pk=delivery.pk)
        # The claim lasts the deadline plus the margin: it cannot lapse while the attempt runs.
        held = (row.claimed_until - timezone.now()).total_seconds()
        assert held > model.deadline_seconds(), held
        for _ in range(5):  # a second worker, the sweep, a redelivered message: none sends it again
            assert engine.delivery_attempt(kind=kind, delivery_id=delivery.pk) is None
            assert delivery.pk not in deliveries_due(kind=kind)
            time.sleep(0.2)
        first.join(10)
        elapsed = time.monotonic() - started
        assert 1.9 <= elapsed < 4, elapsed
    assert dripper.connections == 1 and dripper.max_active_per_delivery == 1
    outcome = outcomes[0]
    assert outcome is not None and outcome.status == "pending" and outcome.retry_in is not None
    row = model._default_manager.get(pk=delivery.pk)
    assert row.claimed_until is None and row.attempts == 1
    assert "deadline" in row.last_error and row.next_attempt_at > timezone.now()


@pytest.mark.django_db
def test_a_dns_failure_is_retried_with_backoff_then_fails_with_an_event(settings) -> None:  # type: ignore[no-untyped-def]
    settings.WEBHOOK_MAX_ATTEMPTS, settings.WEBHOOK_BACKOFF_BASE_SECONDS = 3, 1
    delivery = _webhook("http://nonexistent.invalid/hook")
    for attempt, gap in ((1, 1), (2, 2)):
        outcome = engine.delivery_attempt(kind="webhook", delivery_id=delivery.pk)
        assert outcome.status == "pending" and outcome.retry_in == gap, attempt
        delivery.refresh_from_db()
        assert delivery.attempts == attempt and "cannot resolve" in delivery.last_error
        # Not due before its backoff: an early message does not cut it short.
        assert engine.delivery_attempt(kind="webhook", delivery_id=delivery.pk) is None
        WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    outcome = engine.delivery_attempt(kind="webhook", delivery_id=delivery.pk)
    assert outcome.status == "failed"
    event = Event.objects.get(kind="webhook.delivery_failed")
    assert event.data["error_type"] == "DeliveryDNSError" and event.data["attempts"] == 3
    assert event.data["delivery_id"] == delivery.pk and event.subject == delivery.subscription.name
    assert delivery.subscription.secret not in str(event.data) and "nonexistent" not in event.subject


@pytest.mark.django_db
def test_a_pipeline_delivery_to_an_unresolvable_instance_is_retried(settings) -> None:  # type: ignore[no-untyped-def]
    settings.PIPELINE_DELIVERY_MAX_ATTEMPTS = 5
    delivery = _pipeline_delivery("nonexistent.invalid", 80)
    outcome = engine.delivery_attempt(kind="pipeline", delivery_id=delivery.pk)
    assert outcome.status == "pending" and outcome.retry_in == 1.0
    delivery.refresh_from_db()
    assert "cannot resolve" in delivery.last_error and delivery.instance_url == "http://nonexistent.invalid:80/in"


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["webhook", "pipeline"])
def test_an_egress_denial_fails_at_the_first_attempt_with_its_event(settings, kind: str) -> None:  # type: ignore[no-untyped-def]
    settings.EGRESS_ALLOW_PRIVATE, settings.EGRESS_ALLOW_NETWORKS = False, []
    settings.WEBHOOK_MAX_ATTEMPTS = settings.PIPELINE_DELIVERY_MAX_ATTEMPTS = 10
    delivery = _webhook("http://localhost:9/x") if kind == "webhook" else _pipeline_delivery("127.0.0.1", 9)
    outcome = engine.delivery_attempt(kind=kind, delivery_id=delivery.pk)
    assert outcome.status == "failed" and outcome.retry_in is None
    event = Event.objects.get(kind=f"{kind}.delivery_failed")
    assert event.data["error_type"] == "DeliveryDenied" and event.data["attempts"] == 1


@pytest.mark.django_db
def test_a_failure_notice_about_a_failure_notice_is_not_emitted(settings) -> None:  # type: ignore[no-untyped-def]
    settings.EGRESS_ALLOW_PRIVATE, settings.EGRESS_ALLOW_NETWORKS = False, []
    subscription = WebhookSubscriptionFactory(url="http://localhost:9/x", kinds=["webhook.*"])
    notice = Event.objects.create(kind="webhook.delivery_failed", actor="system", subject="other")
    delivery = WebhookDelivery.objects.create(subscription=subscription, event=notice, next_attempt_at=timezone.now())
    assert engine.delivery_attempt(kind="webhook", delivery_id=delivery.pk).status == "failed"
    assert Event.objects.filter(kind="webhook.delivery_failed").count() == 1  # only the original


@pytest.mark.django_db
def test_a_lapsed_claim_lets_the_sweep_pick_the_delivery_up(settings) -> None:  # type: ignore[no-untyped-def]
    delivery = _webhook("http://nonexistent.invalid/hook", claimed_until=timezone.now() + timedelta(seconds=30))
    assert deliveries_due(kind="webhook") == []
    WebhookDelivery.objects.filter(pk=delivery.pk).update(claimed_until=timezone.now() - timedelta(seconds=1))
    assert deliveries_due(kind="webhook") == [delivery.pk]


@pytest.mark.django_db
def test_creation_queues_the_one_engine_task_for_both_kinds(django_capture_on_commit_callbacks, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from controlplane.delivery import tasks
    from controlplane.events.services import emit
    from pipelines.services import deliveries_create

    sent: list[tuple[str, int]] = []
    monkeypatch.setattr(tasks.deliver, "delay", lambda kind, pk: sent.append((kind, pk)))  # the broker boundary
    WebhookSubscriptionFactory(url="http://example.com/h", kinds=["demo.*"])
    with django_capture_on_commit_callbacks(execute=True):
        emit("demo.happened", subject="x")
    with django_capture_on_commit_callbacks(execute=True):
        created = deliveries_create([(PipelineFactory(slug="q").pk, "svc", {"payload": 1}, None)])
    webhook = WebhookDelivery.objects.get()
    assert sent == [("webhook", webhook.pk), ("pipeline", created[0].pk)]
    sent.clear()
    # Just queued: the sweep does not add a duplicate message (a backed-up queue would grow without end).
    assert engine.deliveries_queue_due() == {kind: 0 for kind in DELIVERY_KINDS} and sent == []
    # A message lost for longer than a claim's length is sent again.
    long_ago = timezone.now() - timedelta(minutes=5)
    WebhookDelivery.objects.update(queued_at=long_ago)
    Delivery.objects.update(queued_at=long_ago)
    assert engine.deliveries_queue_due() == {**{kind: 0 for kind in DELIVERY_KINDS}, "webhook": 1, "pipeline": 1}
    assert sorted(sent) == [("pipeline", created[0].pk), ("webhook", webhook.pk)]
    assert engine.deliveries_queue_due()["webhook"] == 0, "queued again: not due again until a claim's length"


@pytest.mark.django_db
def test_a_recorded_attempt_makes_the_retry_due_at_its_backoff_not_a_claim_later(settings) -> None:  # type: ignore[no-untyped-def]
    settings.WEBHOOK_BACKOFF_BASE_SECONDS = 1
    delivery = _webhook("http://nonexistent.invalid/hook", queued_at=timezone.now())
    assert deliveries_due(kind="webhook") == []  # queued just now
    assert engine.delivery_attempt(kind="webhook", delivery_id=delivery.pk).retry_in == 1
    delivery.refresh_from_db()
    assert delivery.queued_at is None
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    assert deliveries_due(kind="webhook") == [delivery.pk]


class _Healthy(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server API
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
        pass


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_through_serve_dripping_deliveries_end_at_their_deadline_and_checks_keep_flowing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Real serve (one worker per queue, from controlplane/commandlines.py): a webhook and a pipeline
    delivery aimed at a target that drips a byte a second end at their 3 s deadline (long before the
    deliveries' time limits), are retried by the sweep, never sent twice at once, and checks keep being
    recorded throughout."""
    from django.core.management.sql import emit_post_migrate_signal

    from registry.models import CheckResult
    from tests.conftest import subprocess_env
    from tests.processes import ServeProcess
    from tests.registry.factories import CheckFactory, InstanceFactory

    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")  # the default beat schedules
    healthy = ThreadingHTTPServer(("127.0.0.1", 0), _Healthy)
    healthy.daemon_threads = True
    threading.Thread(target=healthy.serve_forever, daemon=True).start()
    instance = InstanceFactory(address="127.0.0.1", port=healthy.server_address[1])
    checks = [CheckFactory(instance=instance, kind="http", path="/", interval=1, timeout=2) for _ in range(2)]
    env = subprocess_env(
        EGRESS_ALLOW_PRIVATE="true",  # the dripping target is on loopback
        WEBHOOK_TIMEOUT_SECONDS="3",
        PIPELINE_DELIVERY_TIMEOUT_SECONDS="3",
        DELIVERY_CLAIM_MARGIN_SECONDS="2",
        WEBHOOK_BACKOFF_BASE_SECONDS="1",
        PIPELINE_DELIVERY_BACKOFF_SECONDS="1",
        TASK_SOFT_TIME_LIMIT_DELIVERIES="60",  # far beyond the deadline: only the deadline can end them
        TASK_TIME_LIMIT_DELIVERIES="70",
    )
    with Dripper("body", every=1.0) as dripper:
        webhook = _webhook(dripper.url)
        pipeline = _pipeline_delivery("127.0.0.1", dripper.port)
        serve = ServeProcess(env, tmp_path)
        try:
            serve.wait_ready()
            deadline = time.monotonic() + 60
            while dripper.connections == 0 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert dripper.connections, f"no delivery reached the dripping target: {serve.output[-3000:]}"
            before = CheckResult.objects.filter(health_check__in=checks).count()
            time.sleep(12)
            after = CheckResult.objects.filter(health_check__in=checks).count()
            # Two 1 s checks for 12 s: about 24 results; well above zero whatever the machine's load.
            assert after - before >= 8, (before, after, serve.output[-3000:])
            ready = Client().get("/readyz").json()
            assert ready["components"]["workers"]["status"] == "up", ready
            assert ready["components"]["checks"]["status"] == "up", ready
        finally:
            code = serve.stop()
            healthy.shutdown()
            healthy.server_close()
    assert code == 0, serve.output[-3000:]
    # Each attempt ended at its deadline (3 s, plus scheduling), and attempts were retried: the deadline,
    # not the 60 s time limit, ended them.
    assert dripper.durations and max(dripper.durations) < 5.5, dripper.durations
    assert dripper.connections >= 3, dripper.connections
    assert dripper.max_active_per_delivery == 1, "a delivery was sent again while its attempt ran"
    assert "TimeLimitExceeded" not in serve.output
    for row in (WebhookDelivery.objects.get(pk=webhook.pk), Delivery.objects.get(pk=pipeline.pk)):
        assert row.attempts >= 1 and "deadline" in row.last_error, (row, row.last_error)
