"""Uptime bars summed by the database: the same seconds as reading every point, and final days read once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from monitoring.models import MetricPoint, MetricSeries, Resolution, RollupWatermark, StatusPageService
from monitoring.points import floor_time
from monitoring.selectors.uptime_days import _bars_by_points, _calendar, status_seconds
from tests.registry.factories import InstanceFactory, ServiceFactory

pytestmark = pytest.mark.django_db

DAY, HOUR, MINUTE = Resolution.DAY, Resolution.HOUR, Resolution.MINUTE


@pytest.fixture(autouse=True)
def _fresh_cache():  # type: ignore[no-untyped-def]
    cache.clear()
    yield
    cache.clear()


def point(series: MetricSeries, resolution: int, bucket, breakdown: dict[str, float]) -> MetricPoint:  # type: ignore[no-untyped-def]
    return MetricPoint(series=series, resolution=resolution, bucket=bucket, count=1, total=1, breakdown=breakdown)


def history(target: str, now, seed: int) -> MetricSeries:  # type: ignore[no-untyped-def]
    """As the roll-ups leave it: day points up to the day watermark (today), hour points for the last 3 days and
    today up to the hour watermark, minute points for the last 48 h — the levels overlap, as they do for real."""
    series = MetricSeries.objects.create(kind="service", target=target, metric="status")
    today, hour = floor_time(now, 86400), floor_time(now, 3600)
    rows = []
    for ago in range(1, 95):  # 94 days back: the oldest four are outside a 90-day bar
        day = today - timedelta(days=ago)
        kind = (ago + seed) % 5
        shares = [
            {"passing": 86400},
            {"passing": 86400 - 3600, "critical": 3600},
            {"passing": 43200, "maintenance": 43200},
            {"passing": 80000, "warning": 6400},
            {"passing": 1000},  # mostly unknown
        ][kind]
        if (ago + seed) % 11 == 0:
            continue  # a day without a point is unknown
        rows.append(point(series, DAY, day, shares))
    for hours_ago in range(1, 24 * 3 + int((now - today).total_seconds() // 3600) + 1):
        bucket = hour - timedelta(hours=hours_ago)
        rows.append(
            point(
                series,
                HOUR,
                bucket,
                {"passing": 3000, "critical": 600} if hours_ago % 7 == seed % 7 else {"passing": 3600},
            )
        )
    for minutes_ago in range(1, 48 * 60, 7):
        bucket = floor_time(now, 60) - timedelta(minutes=minutes_ago)
        rows.append(
            point(series, MINUTE, bucket, {"passing": 50, "warning": 10} if minutes_ago % 3 else {"maintenance": 60})
        )
    MetricPoint.objects.bulk_create(rows)
    return series


def marks(now) -> None:  # type: ignore[no-untyped-def]
    RollupWatermark.objects.update_or_create(name="day", defaults={"position": floor_time(now, 86400)})
    RollupWatermark.objects.update_or_create(name="hour", defaults={"position": floor_time(now, 3600)})
    RollupWatermark.objects.update_or_create(name="minute", defaults={"position": floor_time(now, 60)})


def flat(segments) -> list[tuple]:  # type: ignore[no-untyped-def]
    return [
        (s.day, s.status, round(s.share.passing, 3), round(s.share.degraded, 3), round(s.share.down, 3),
         round(s.share.maintenance, 3), round(s.share.unknown, 3), s.share.seconds)
        for s in segments
    ]  # fmt: skip


def test_summed_by_the_database_equals_reading_every_point_at_the_coarsest_final_level() -> None:
    now = timezone.now()
    targets = [str(n) for n in range(1, 5)]
    for seed, target in enumerate(targets):
        history(target, now, seed)
    marks(now)
    first = floor_time(now, 86400) - timedelta(days=89)
    by_points = _bars_by_points("service", [*targets, "none"], _calendar(first, 90, now), now)
    expected = {target: by_points.segments(target) for target in [*targets, "none"]}
    found = status_seconds(kind="service", targets=[*targets, "none"], days=90, now=now)
    for target in [*targets, "none"]:
        assert flat(found[target]) == flat(expected[target]), target
    statuses = {s.status for target in targets for s in found[target]}
    assert statuses == {"passing", "down", "maintenance", "degraded", "unknown"}
    # Today: hour points up to the hour watermark plus the minutes after it, never both for the same time.
    today = found[targets[0]][-1]
    assert today.day == floor_time(now, 86400) and today.share.seconds == pytest.approx(
        (now - today.day).total_seconds()
    )
    # Again from the cache (final days) and the database (today): the same answer.
    again = status_seconds(kind="service", targets=[*targets, "none"], days=90, now=now)
    assert {t: flat(v) for t, v in again.items()} == {t: flat(v) for t, v in found.items()}


def test_final_days_are_read_once_and_today_on_every_build() -> None:
    now = timezone.now()
    series = history("7", now, 0)
    marks(now)
    yesterday = floor_time(now, 86400) - timedelta(days=1)
    before = status_seconds(kind="service", targets=["7"], days=90, now=now)["7"]
    # A final day never changes: a rewrite of its point (which the roll-ups never do) is not read again ...
    MetricPoint.objects.filter(series=series, resolution=DAY, bucket=yesterday).update(breakdown={"critical": 86400})
    # ... while today's newest minute is.
    MetricPoint.objects.create(
        series=series, resolution=MINUTE, bucket=floor_time(now, 60), count=1, total=1, breakdown={"critical": 30}
    )
    after = status_seconds(kind="service", targets=["7"], days=90, now=now)["7"]
    assert flat(after[:-1]) == flat(before[:-1])
    assert after[-1].share.down == before[-1].share.down + 30
    # When the oldest day shown moves on (the next UTC day), the final days are read again.
    later = status_seconds(kind="service", targets=["7"], days=90, now=now + timedelta(days=1))["7"]
    assert later[-3].day == yesterday and later[-3].share.down == 86400


def test_without_watermarks_every_point_is_read_as_before() -> None:
    now = timezone.now()
    series = MetricSeries.objects.create(kind="service", target="9", metric="status")
    yesterday = floor_time(now, 86400) - timedelta(days=1)
    MetricPoint.objects.create(
        series=series, resolution=DAY, bucket=yesterday, count=1, total=1, breakdown={"passing": 86400}
    )
    days = status_seconds(kind="service", targets=["9"], days=3, now=now)["9"]
    assert [d.status for d in days] == ["unknown", "passing", "unknown"]
    assert cache.get_many([f"monitoring:days:{series.pk}:{n}:{n}" for n in range(20000, 21000)]) == {}


def test_status_page_rebuilt_with_final_days_cached_costs_no_more_queries(client) -> None:  # type: ignore[no-untyped-def]
    now = timezone.now()
    for index in range(3):
        service = ServiceFactory(name=f"pub-{index}")
        InstanceFactory(service=service)
        StatusPageService.objects.create(service=service, public=True)
        history(str(service.pk), now, index)
    marks(now)

    def build() -> tuple[int, str]:
        cache.delete("monitoring:status:page")
        with CaptureQueriesContext(connection) as captured:
            html = client.get("/status/").content.decode()
        return len(captured.captured_queries), html

    cold, cold_html = build()
    warm, warm_html = build()
    assert warm == cold
    assert cold_html.count('class="day ') == warm_html.count('class="day ') == 270
    assert cold_html == warm_html
