"""The issue's series read back through `GET /api/v1/metrics/series/`, from real sources: time in each
status of a check, a pipeline step's packets/errors/drops/p95, deliveries sent/failed/retried, a Celery
queue's length asked of the real broker (filesystem embedded, Redis in production) and the dispatch lag."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from kombu import Queue

from controlplane.celery import app
from monitoring.models import RollupWatermark
from monitoring.services import rollups
from pipelines.models import StepStats
from tests.factories import EventFactory, WebhookSubscriptionFactory
from tests.monitoring.factories import write_results
from tests.pipelines.factories import PipelineFactory
from tests.registry.factories import CheckFactory

pytestmark = pytest.mark.django_db
SERIES = "/api/v1/metrics/series/"
QUEUE = "monitoring-test-queue"


def iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read(api, kind: str, target: str, metric: str, start: datetime, minutes: int) -> list:  # type: ignore[no-untyped-def]
    """The per-minute values of one series from `start` (a minute boundary)."""
    response = api.get(
        SERIES,
        {
            "kind": kind,
            "target": target,
            "metric": metric,
            "from": iso(start),
            "to": iso(start + timedelta(minutes=minutes)),
            "step": "1m",
        },
    )
    assert response.status_code == 200, response.content
    return [point["value"] for point in response.json()["points"]]


def this_minute() -> datetime:
    return timezone.now().replace(second=0, microsecond=0)


def sample_time() -> datetime:
    """10 s into this minute: samples taken at it and a second later fall in one bucket, whenever the test runs."""
    return this_minute() + timedelta(seconds=10)


def test_time_in_each_status_of_a_check(client_for) -> None:
    start = this_minute() - timedelta(minutes=40)
    RollupWatermark.objects.create(name="minute", position=start)
    check = CheckFactory(interval=10, timeout=2)
    write_results(check, start, 30, status="passing")  # minutes 0-4
    write_results(check, start + timedelta(minutes=5), 18, status="critical")  # minutes 5-7, then silence
    rollups.rollup_minutes()
    api = client_for("monitoring:read")
    values = {
        metric: read(api, "check", str(check.pk), metric, start, 12)
        for metric in ("time_passing", "time_critical", "time_warning", "time_unknown")
    }
    minute = {i: {m: v[i] for m, v in values.items()} for i in range(12)}
    assert minute[0] == {"time_passing": 60, "time_critical": 0, "time_warning": 0, "time_unknown": 0}
    assert minute[6] == {"time_passing": 0, "time_critical": 60, "time_warning": 0, "time_unknown": 0}
    # The last result holds for its coverage (two intervals + timeout), then the time is unknown, shown as such.
    assert 0 < minute[8]["time_critical"] < 60 and minute[8]["time_critical"] + minute[8]["time_unknown"] == 60
    assert set(minute[10].values()) == {None}  # nothing stored: unknown, not 0 s of every status


def test_a_pipeline_step_and_its_pipeline_per_minute(client_for) -> None:
    pipeline = PipelineFactory(slug="orders")
    step = StepStats.objects.create(pipeline=pipeline, step="parse", latency_buckets=[0] * 14)
    whole = StepStats.objects.create(pipeline=pipeline, step="", latency_buckets=[0] * 14)
    at = sample_time()
    rollups.samples_record(now=at)  # the baseline
    StepStats.objects.filter(pk=step.pk).update(
        received=40, sent=30, errors=6, dropped=4, latency_count=40, latency_sum_ms=4000,
        latency_buckets=[0, 0, 0, 0, 0, 0, 40] + [0] * 7,
    )  # fmt: skip
    StepStats.objects.filter(pk=whole.pk).update(received=40, sent=30, errors=6, dropped=4)
    rollups.samples_record(now=at + timedelta(seconds=1))
    api = client_for("monitoring:read")
    start = at.replace(second=0, microsecond=0) - timedelta(minutes=2)
    got = {m: read(api, "step", "orders/parse", m, start, 3)[2] for m in ("packets", "sent", "errors", "drops")}
    assert got == {"packets": 40, "sent": 30, "errors": 6, "drops": 4}
    p95 = read(api, "step", "orders/parse", "latency_p95", start, 3)[2]
    assert p95 is not None and 50 < p95 <= 250  # inside the pipeline's 100 ms bucket, mapped onto ours
    assert read(api, "pipeline", "orders", "errors", start, 3) == [None, None, 6]


def test_deliveries_sent_failed_retried_per_minute(client_for) -> None:
    from controlplane.events.models import WebhookDelivery

    subscription = WebhookSubscriptionFactory()
    at = sample_time()
    rollups.samples_record(now=at)
    for status, attempts in (("delivered", 1), ("delivered", 2), ("failed", 5)):
        WebhookDelivery.objects.create(
            subscription=subscription, event=EventFactory(), status=status, attempts=attempts
        )
    rollups.samples_record(now=at + timedelta(seconds=1))
    api = client_for("monitoring:read")
    got = {
        m: read(api, "delivery", "webhook", m, at.replace(second=0, microsecond=0), 1)[0]
        for m in ("sent", "failed", "retried")
    }
    assert got == {"sent": 2, "failed": 1, "retried": 5}  # attempts after each delivery's first


@pytest.fixture
def broker_queue(settings):  # type: ignore[no-untyped-def]
    """A project queue of its own on the real broker (no worker consumes it), removed afterwards."""
    settings.TASK_QUEUE_TASKS = {**settings.TASK_QUEUE_TASKS, QUEUE: ()}
    queue = Queue(QUEUE, routing_key=QUEUE)

    def publish(count: int) -> None:
        with app.connection_for_write() as connection:
            producer = connection.Producer()
            for n in range(count):
                producer.publish({"n": n}, routing_key=QUEUE, declare=[queue], serializer="json")

    yield publish
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        channel.queue_purge(QUEUE)
        channel.queue_delete(QUEUE)


def test_celery_queue_length_from_the_broker_and_dispatch_lag(client_for, broker_queue) -> None:
    broker_queue(3)
    at = sample_time()
    CheckFactory(next_run_at=at - timedelta(seconds=30))  # due 30 s ago, nobody claimed it
    rollups.samples_record(now=at)
    broker_queue(2)
    rollups.samples_record(now=at + timedelta(seconds=1))  # a second gauge sample in the same minute
    now = at.replace(second=0, microsecond=0)
    api = client_for("monitoring:read")
    assert read(api, "celery", QUEUE, "queue_length", now, 1) == [4.0]  # mean of 3 and 5
    assert read(api, "celery", QUEUE, "queue_length_max", now, 1) == [5.0]
    [lag] = read(api, "celery", "probes", "dispatch_lag_max_ms", now, 1)
    assert 30_000 <= lag <= 31_000
