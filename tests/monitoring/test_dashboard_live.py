"""Live updates: coalesced into one message per tick, fanned out by one hub, through a real uvicorn within 3 s."""

from __future__ import annotations

import asyncio
import http.client
import json
import subprocess
import time

import pytest
from django.conf import settings
from django.test import Client

from controlplane import commandlines
from controlplane.events.models import Event
from monitoring import live
from registry.models import CheckStatus
from registry.services import check_ttl_update
from tests.conftest import subprocess_env
from tests.processes import free_port, stop, wait_http
from tests.registry.factories import CheckFactory, InstanceFactory, ServiceFactory


def transitions(services: int, per_service: int) -> list[int]:
    """Store `services * per_service` transition events (bulk, as a burst from one probe batch would)."""
    ids = []
    for index in range(services):
        service = ServiceFactory(name=f"burst-{index}")
        InstanceFactory(service=service, status="critical")
        ids.append(service.pk)
    Event.objects.bulk_create(
        [
            Event(
                kind="check.status_changed",
                subject=f"burst-{i % services}/x/y",
                data={"service": f"burst-{i % services}"},
            )
            for i in range(services * per_service)
        ]
    )
    return ids


@pytest.mark.django_db
def test_a_burst_of_1000_transitions_is_one_payload_with_each_service_once() -> None:
    since = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
    ids = transitions(5, 200)
    payload = live.collect(since)
    assert payload["changed"] == 1000 and not payload["reload"]
    assert sorted(s["id"] for s in payload["services"]) == sorted(ids)
    assert {s["status"] for s in payload["services"]} == {"critical"}
    assert payload["counts"]["instances"]["critical"] == 5
    assert len(payload["events"]) == 10 and "data" not in payload["events"][0]  # no check output pushed
    assert live.collect(payload["last_event"])["changed"] == 0


@pytest.mark.django_db
def test_more_changes_than_a_message_carries_tell_the_page_to_reload(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(live, "MAX_SERVICES_PER_MESSAGE", 3)
    since = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
    transitions(4, 1)
    payload = live.collect(since)
    assert payload["reload"] and payload["services"] == []


@pytest.mark.django_db(transaction=True)
def test_one_hub_sends_each_stream_one_message_per_tick_for_a_burst(settings) -> None:  # type: ignore[no-untyped-def]
    settings.MONITORING_LIVE_TICK_SECONDS = 0.2
    settings.REDIS_URL = None  # the embedded path: the hub polls the event table each tick

    async def scenario() -> list[list[str]]:
        live.LiveHub._instance = None
        hub = live.LiveHub.for_running_loop()
        streams = [live.stream(hub) for _ in range(50)]
        hellos = [await s.__anext__() for s in streams]
        assert all("event: hello" in h for h in hellos)
        await hub.run_db(transitions, 3, 334)  # 1,002 transitions stored "by a worker"
        first = [await asyncio.wait_for(s.__anext__(), 3) for s in streams]
        await asyncio.sleep(0.6)  # a few more ticks: nothing more to say
        leftovers = sum(queue.qsize() for queue in hub.streams)
        sent, ticks = hub.messages_sent, hub.ticks_with_changes
        for s in streams:
            await s.aclose()
        for task in hub.tasks:
            task.cancel()
        live.LiveHub._instance = None
        return first, leftovers, sent, ticks

    first, leftovers, sent, ticks = asyncio.run(scenario())
    assert leftovers == 0 and sent == 50 and ticks == 1  # one message per stream, one database read for all
    payload = json.loads(first[0].split("data: ", 1)[1])
    assert payload["changed"] == 1002 and len(payload["services"]) == 3
    assert all(message == first[0] for message in first)


def _session_cookie(django_user_model, name: str = "operator", staff: bool = True) -> str:  # type: ignore[no-untyped-def]
    user = django_user_model.objects.create_user(name, password="a-long-test-password", is_staff=staff)
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


class EventStream:
    """A raw SSE reader over http.client (what EventSource does), with the time each event arrived."""

    def __init__(self, port: int, cookie: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.conn.request("GET", "/dashboard/live/", headers={"Cookie": cookie, "Accept": "text/event-stream"})
        self.response = self.conn.getresponse()
        self.buffer = b""

    def next_event(self) -> tuple[str, dict, float]:
        while b"\n\n" not in self.buffer:
            chunk = self.response.read1(65536)
            if not chunk:
                raise EOFError("stream ended")
            self.buffer += chunk
        block, self.buffer = self.buffer.split(b"\n\n", 1)
        lines = dict(
            line.split(": ", 1) for line in block.decode().splitlines() if ": " in line and not line.startswith(":")
        )
        if "event" not in lines:
            return self.next_event()
        return lines["event"], json.loads(lines.get("data", "{}")), time.time()

    def close(self) -> None:
        self.conn.close()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_stored_transition_reaches_an_open_stream_through_uvicorn_within_3_seconds(
    django_user_model, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """Embedded pass: the uvicorn hub polls the event table. Production pass: the test process publishes on Redis."""
    instance = InstanceFactory(service=ServiceFactory(name="batch"), instance_id="w1", status="passing")
    CheckFactory(instance=instance, name="heartbeat", kind="ttl", ttl=60, status=CheckStatus.PASSING)
    cookie = _session_cookie(django_user_model)
    port = free_port()
    log = tmp_path / "uvicorn.log"
    with open(log, "w") as handle:
        process = subprocess.Popen(
            commandlines.uvicorn("127.0.0.1", port), env=subprocess_env(), stdout=handle, stderr=subprocess.STDOUT
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", process, log)
        anonymous = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        anonymous.request("GET", "/dashboard/live/")
        assert anonymous.getresponse().status == 403
        for header in (
            _session_cookie(django_user_model, "visitor", staff=False),
            f"{settings.SESSION_COOKIE_NAME}=forged",
        ):
            refused = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            refused.request("GET", "/dashboard/live/", headers={"Cookie": header})
            assert refused.getresponse().status == 403, header
        streams = [EventStream(port, cookie) for _ in range(3)]
        for stream_ in streams:
            assert stream_.response.status == 200
            assert stream_.response.getheader("Content-Type").startswith("text/event-stream")
            assert stream_.next_event()[0] == "hello"
        time.sleep(0.5)
        check_ttl_update(instance=instance, status=CheckStatus.CRITICAL, output="late")
        stored = Event.objects.get(kind="instance.status_changed").created_at.timestamp()
        for stream_ in streams:
            while True:
                kind, data, arrived = stream_.next_event()
                if kind == "update" and any(s["name"] == "batch" for s in data.get("services", [])):
                    break
            assert [s["status"] for s in data["services"] if s["name"] == "batch"] == ["critical"]
            assert arrived - stored <= 3.0, arrived - stored
        # A burst: 600 transitions in one transaction arrive as one message (or two if a tick splits the commit).
        since_burst = time.time()
        transitions(2, 300)
        messages = 0
        seen = 0
        while seen < 600 and time.time() - since_burst < 6:
            kind, data, _ = streams[0].next_event()
            if kind == "update":
                messages += 1
                seen += data["changed"]
        assert seen == 600 and messages <= 2, (seen, messages)
        for stream_ in streams:
            stream_.close()
    finally:
        stop(process)


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_committed_event_is_published_on_redis_for_every_hub() -> None:
    import redis

    if not settings.REDIS_URL:
        pytest.skip("production pass only: embedded mode has no Redis and the hubs poll")
    client = redis.Redis.from_url(settings.REDIS_URL)
    pubsub = client.pubsub()
    pubsub.subscribe(live.channel())
    pubsub.get_message(timeout=1)  # the subscribe confirmation
    event = Event.objects.create(kind="check.status_changed", subject="a/b/c", data={"service": "a"})
    message = pubsub.get_message(timeout=2)
    while message is not None and message["type"] != "message":
        message = pubsub.get_message(timeout=2)
    assert message is not None and int(message["data"]) == event.pk
    pubsub.close()
