"""The other apps' records as series: config namespaces, pipeline steps (from running totals), deliveries,
Celery queues; a whole beat tick (`rollups_run`) in the mode under test."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from configstore.services.entries import config_entry_set
from controlplane.events.services import emit
from monitoring.models import MetricPoint, MetricSeries, RollupWatermark
from monitoring.points import dense
from monitoring.services import rollups
from pipelines.models import StepStats
from tests.configstore.factories import NamespaceFactory
from tests.factories import EventFactory, WebhookSubscriptionFactory
from tests.pipelines.factories import PipelineFactory

pytestmark = pytest.mark.django_db


def points_of(kind: str, target: str, metric: str) -> list[MetricPoint]:
    return list(MetricPoint.objects.filter(series__kind=kind, series__target=target, series__metric=metric))


def test_namespace_revisions_and_source_failures_per_minute() -> None:
    start = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=5)
    RollupWatermark.objects.create(name="minute", position=start)
    namespace = NamespaceFactory(name="payments")
    for n in range(3):
        config_entry_set(namespace=namespace, key=f"k{n}", value=n, actor="system")
    emit("config.source_failed", subject="payments", data={"namespace": "payments", "source": "f", "error": "x"})
    rollups.rollup_minutes(now=timezone.now() + timedelta(minutes=2))
    total = {"revisions": 0.0, "source_failures": 0.0}
    for point in points_of("namespace", "payments", "changes"):
        for label, value in point.breakdown.items():
            total[label] += value
    assert total == {"revisions": 3.0, "source_failures": 1.0}
    before = sorted(MetricPoint.objects.values_list("bucket", "breakdown"))
    RollupWatermark.objects.filter(name="minute").update(position=start)
    rollups.rollup_minutes(now=timezone.now() + timedelta(minutes=2))
    assert sorted(MetricPoint.objects.values_list("bucket", "breakdown")) == before


def test_pipeline_steps_store_differences_of_their_running_totals() -> None:
    pipeline = PipelineFactory(slug="orders")
    row = StepStats.objects.create(
        pipeline=pipeline, step="", received=100, sent=90, errors=10, latency_count=100, latency_sum_ms=500,
        latency_buckets=[0] * 14,
    )  # fmt: skip
    rollups.samples_record()  # the first sample only sets the baseline: history is not dumped into one minute
    assert not points_of("pipeline", "orders", "packets")
    StepStats.objects.filter(pk=row.pk).update(
        received=130, sent=115, errors=12, dropped=3, latency_count=130, latency_sum_ms=800,
        latency_buckets=[0, 0, 0, 30] + [0] * 10,
    )  # fmt: skip
    rollups.samples_record()
    rollups.samples_record()  # nothing changed since: adds nothing
    [point] = points_of("pipeline", "orders", "packets")
    assert (point.count, point.total) == (30, 300.0)
    assert point.breakdown == {"sent": 25.0, "errors": 2.0, "dropped": 3.0}
    assert sum(dense(point.histogram)) == 30
    # a reset (the pipeline's stats rows recreated) counts from zero, never negative
    StepStats.objects.filter(pk=row.pk).update(received=4, sent=4, errors=0, dropped=0, latency_count=4)
    rollups.samples_record()
    [point] = points_of("pipeline", "orders", "packets")
    assert point.count == 34


def test_deliveries_sent_failed_retried() -> None:
    from controlplane.events.models import WebhookDelivery

    subscription = WebhookSubscriptionFactory()
    rollups.samples_record()
    for status, attempts in (("delivered", 1), ("delivered", 3), ("failed", 6), ("pending", 1)):
        WebhookDelivery.objects.create(
            subscription=subscription, event=EventFactory(), status=status, attempts=attempts
        )
    rollups.samples_record()
    [point] = points_of("delivery", "webhook", "deliveries")
    assert point.breakdown == {"sent": 2.0, "failed": 1.0, "retried": 7.0}


def test_a_whole_tick_samples_queues_and_lag_and_rolls_up() -> None:
    RollupWatermark.objects.create(name="minute", position=timezone.now().replace(second=0, microsecond=0))
    result = rollups.rollups_run(now=timezone.now() + timedelta(minutes=3))
    assert result["minutes"] >= 2
    kinds = set(MetricSeries.objects.values_list("kind", "target", "metric"))
    assert ("celery", "probes", "dispatch_lag") in kinds
    assert {("celery", queue, "queue_length") for queue in ("probes", "deliveries", "housekeeping")} <= kinds
    assert rollups.rollups_run(now=timezone.now() + timedelta(minutes=3))["minutes"] == 0
