"""Roll-ups: idempotent, catching up after a gap without double counting, coarser levels exact, retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitoring.models import MetricPoint, MetricSeries, Resolution, RollupWatermark
from monitoring.points import dense, quantile
from monitoring.services import rollups
from registry.models import CheckResult
from tests.monitoring.factories import write_results
from tests.registry.factories import CheckFactory

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday


def snapshot() -> list[tuple]:
    return sorted(
        MetricPoint.objects.values_list(
            "series__kind", "series__target", "series__metric", "resolution", "bucket", "count", "total",
            "min", "max", "histogram", "breakdown",
        )
    )  # fmt: skip


def point(kind: str, target: object, resolution: int, bucket: datetime) -> MetricPoint:
    return MetricPoint.objects.get(
        series__kind=kind, series__target=str(target), series__metric="status", resolution=resolution, bucket=bucket
    )


@pytest.fixture
def start_watermark():  # type: ignore[no-untyped-def]
    """Roll-ups start at T0 (instead of 'now - 24 h')."""
    RollupWatermark.objects.create(name="minute", position=T0)


def test_minute_points_from_results(start_watermark) -> None:
    check = CheckFactory(interval=10, timeout=2)
    write_results(check, T0, 6, latency=20)  # 10:00:00 … 10:00:50, passing
    write_results(check, T0 + timedelta(minutes=1), 6, status="critical", latency=900)
    rollups.rollup_minutes(now=T0 + timedelta(minutes=4))
    first = point("check", check.pk, 60, T0)
    assert (first.count, first.total) == (6, 6)
    assert first.breakdown == {"passing": 60.0}
    assert first.min == first.max == 20
    second = point("check", check.pk, 60, T0 + timedelta(minutes=1))
    assert (second.count, second.total) == (6, 0)
    # the last critical result (10:01:50) holds for its coverage (2 x 10 s + 2 s) into 10:02
    assert second.breakdown == {"critical": 60.0}
    third = point("check", check.pk, 60, T0 + timedelta(minutes=2))
    assert third.count == 0 and third.breakdown == {"critical": 12.0}
    p95 = quantile(dense(second.histogram), 0.95)
    assert p95 is not None and p95 > 750
    assert second.histogram == "12:6"  # stored sparse: 900 ms is in the (750, 1000] bucket
    # the instance and the service carry the counts and the time
    instance = point("instance", check.instance_id, 60, T0 + timedelta(minutes=1))
    service = point("service", check.instance.service_id, 60, T0 + timedelta(minutes=1))
    assert (instance.count, instance.breakdown) == (6, {"critical": 60.0})
    assert (service.count, service.breakdown) == (6, {"critical": 60.0})


def test_running_twice_changes_nothing(start_watermark) -> None:
    check = CheckFactory()
    write_results(check, T0, 30)
    now = T0 + timedelta(minutes=6)
    rollups.rollup_minutes(now=now)
    rollups.rollup_level(resolution=Resolution.HOUR)
    before = snapshot()
    assert before
    rollups.rollup_minutes(now=now)
    rollups.rollup_level(resolution=Resolution.HOUR)
    assert snapshot() == before
    # even when the watermark is moved back: whole buckets are recomputed, not incremented
    RollupWatermark.objects.filter(name="minute").update(position=T0)
    rollups.rollup_minutes(now=now)
    assert snapshot() == before


def test_catch_up_after_a_gap_counts_each_result_once(start_watermark) -> None:
    check = CheckFactory()
    write_results(check, T0, 6 * 60 * 3)  # three hours, one result every 10 s
    # the beat was down: nothing ran for three hours; the first run after it has a budget of a few chunks
    rollups.rollup_minutes(now=T0 + timedelta(minutes=25), deadline=0)
    assert RollupWatermark.objects.get(name="minute").position == T0 + timedelta(minutes=10)
    rollups.rollup_minutes(now=T0 + timedelta(hours=3, minutes=1))
    rollups.rollup_level(resolution=Resolution.HOUR)
    minute_total = sum(MetricPoint.objects.filter(series__kind="check", resolution=60).values_list("count", flat=True))
    hours = list(
        MetricPoint.objects.filter(series__kind="check", resolution=3600)
        .order_by("bucket")
        .values_list("bucket", "count", "breakdown")
    )
    assert minute_total == CheckResult.objects.count() == 1080
    assert [h[0] for h in hours] == [T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2)]
    assert [h[1] for h in hours] == [360, 360, 360]
    assert [h[2] for h in hours] == [{"passing": 3600.0}] * 3
    # a second pass over the same hours (watermarks moved back) leaves the same numbers
    before = snapshot()
    RollupWatermark.objects.filter(name__in=["minute", "hour"]).update(position=T0)
    rollups.rollup_minutes(now=T0 + timedelta(hours=3, minutes=1))
    rollups.rollup_level(resolution=Resolution.HOUR)
    assert snapshot() == before


def test_day_points_sum_hours_exactly(start_watermark) -> None:
    check = CheckFactory(interval=60, timeout=5)
    write_results(check, T0, 60 * 14, every=60, latency=5)  # 10:00 until 24:00
    write_results(check, T0 + timedelta(hours=14), 60, every=60, status="warning", latency=300)
    rollups.rollup_minutes(now=T0 + timedelta(hours=15, minutes=2))
    rollups.rollup_level(resolution=Resolution.HOUR)
    rollups.rollup_level(resolution=Resolution.DAY)
    day = point("check", check.pk, Resolution.DAY, datetime(2026, 3, 2, tzinfo=UTC))
    assert (day.count, day.total) == (840, 840)
    assert day.breakdown == {"passing": 14 * 3600.0}
    # 3 March's day bucket is not final yet (its hours are not all rolled up)
    assert not MetricPoint.objects.filter(resolution=Resolution.DAY, bucket=datetime(2026, 3, 3, tzinfo=UTC)).exists()
    hour = point("check", check.pk, Resolution.HOUR, datetime(2026, 3, 3, 0, tzinfo=UTC))
    assert hour.breakdown == {"warning": 3600.0} and hour.total == 0


def test_retention_prunes_each_level_at_its_age(settings) -> None:
    settings.MONITORING_MINUTE_RETENTION_HOURS = 48
    settings.MONITORING_HOUR_RETENTION_DAYS = 90
    settings.MONITORING_DAY_RETENTION_DAYS = 730
    series = MetricSeries.objects.create(kind="check", target="1", metric="status")
    now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    ages = {60: [timedelta(hours=47), timedelta(hours=49)], 3600: [timedelta(days=89), timedelta(days=91)],
            86400: [timedelta(days=729), timedelta(days=731)]}  # fmt: skip
    for resolution, (young, old) in ages.items():
        for age in (young, old):
            MetricPoint.objects.create(series=series, resolution=resolution, bucket=now - age, count=1)
    assert rollups.points_prune(now=now) == 3
    kept = sorted(MetricPoint.objects.values_list("resolution", "bucket"))
    assert kept == sorted((resolution, now - young) for resolution, (young, _) in ages.items())
