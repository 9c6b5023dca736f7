"""Uptime: passing / (window - maintenance), unknown time reported and counted against; the registry flag
as a window; recurring windows in non-UTC zones across DST changes."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from controlplane.events.models import Event
from monitoring.models import MaintenanceWindow, Resolution, RollupWatermark
from monitoring.selectors.maintenance import in_maintenance, window_intervals
from monitoring.selectors.uptime import uptime_many
from monitoring.services import rollups
from monitoring.services.maintenance import maintenance_flags_sync
from registry.services import instance_set_maintenance
from tests.monitoring.factories import MaintenanceWindowFactory, write_results
from tests.registry.factories import CheckFactory

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def roll(now: datetime) -> None:
    rollups.rollup_minutes(now=now)
    rollups.rollup_level(resolution=Resolution.HOUR)
    rollups.rollup_level(resolution=Resolution.DAY)


@pytest.mark.django_db
def test_uptime_excludes_maintenance_and_reports_unknown_time() -> None:
    RollupWatermark.objects.create(name="minute", position=T0)
    check = CheckFactory(interval=10, timeout=2)  # a result covers 2 x 10 + 2 = 22 s
    write_results(check, T0, 180)  # 10:00-10:30 passing
    write_results(check, T0 + timedelta(minutes=30), 60, status="critical")  # 10:30-10:40 (+12 s)
    write_results(check, T0 + timedelta(minutes=50), 60)  # 10:50-11:00 passing, but in maintenance
    MaintenanceWindowFactory(
        scope="service",
        service=check.instance.service,
        starts_at=T0 + timedelta(minutes=50),
        ends_at=T0 + timedelta(hours=1),
    )
    roll(T0 + timedelta(hours=1, seconds=20))  # minute watermark: 11:00
    service = ("service", str(check.instance.service_id))
    found = uptime_many(
        targets=[service, ("check", str(check.pk))], windows=["1h", "24h"], now=T0 + timedelta(hours=1, seconds=20)
    )
    hour, day = found[service]
    assert (hour.start, hour.end) == (T0, T0 + timedelta(hours=1))
    assert (hour.passing, hour.failing, hour.maintenance) == (1800.0, 612.0, 600.0)
    assert hour.unknown == 588.0
    assert hour.uptime == pytest.approx(1800 / 3000)
    # the 24-hour window reads the hour point (final) and is mostly unknown time
    assert day.passing == 1800.0 and day.maintenance == 600.0
    assert day.unknown == 86400 - 1800 - 612 - 600
    assert day.uptime == pytest.approx(1800 / (86400 - 600))
    # the check reads the same (its instance's service is in maintenance)
    assert found[("check", str(check.pk))][0].uptime == pytest.approx(0.6)


@pytest.mark.django_db
def test_nothing_known_is_unknown_not_zero_or_full() -> None:
    RollupWatermark.objects.create(name="minute", position=T0)
    check = CheckFactory()
    roll(T0 + timedelta(hours=2))
    [result] = uptime_many(targets=[("check", str(check.pk))], windows=["1h"], now=T0 + timedelta(hours=2))[
        ("check", str(check.pk))
    ]
    assert result.uptime is None and result.unknown == 3600.0 and result.passing == 0


@pytest.mark.django_db
def test_whole_window_in_maintenance_has_no_uptime() -> None:
    RollupWatermark.objects.create(name="minute", position=T0)
    check = CheckFactory()
    write_results(check, T0, 360)
    MaintenanceWindowFactory(scope="everything", starts_at=T0 - timedelta(days=1), ends_at=T0 + timedelta(days=1))
    roll(T0 + timedelta(hours=1, minutes=1))
    [result] = uptime_many(targets=[("check", str(check.pk))], windows=["1h"], now=T0 + timedelta(hours=1, minutes=1))[
        ("check", str(check.pk))
    ]
    assert result.maintenance == 3600.0 and result.uptime is None


@pytest.mark.django_db
def test_instance_window_leaves_the_other_instances_of_the_service_counted() -> None:
    RollupWatermark.objects.create(name="minute", position=T0)
    first = CheckFactory()
    second = CheckFactory(instance__service=first.instance.service)
    write_results(first, T0, 60, status="critical")
    write_results(second, T0, 60)
    MaintenanceWindowFactory(scope="instance", instance=first.instance, starts_at=T0, ends_at=T0 + timedelta(hours=1))
    roll(T0 + timedelta(minutes=11))
    now = T0 + timedelta(minutes=11)
    found = uptime_many(
        targets=[("service", str(first.instance.service_id)), ("instance", str(first.instance_id))],
        windows=["10m"],
        now=now,
    )
    service, instance = (
        found[("service", str(first.instance.service_id))][0],
        found[("instance", str(first.instance_id))][0],
    )
    # the critical instance is in maintenance: the service is as good as its other instance
    assert service.passing == 600.0 and service.failing == 0 and service.uptime == 1.0
    assert instance.maintenance == 600.0 and instance.uptime is None


@pytest.mark.django_db
def test_registry_flag_becomes_a_window_with_the_times_of_its_events() -> None:
    check = CheckFactory()
    instance = check.instance
    instance_set_maintenance(instance=instance, enabled=True, reason="disk swap")
    entered = Event.objects.filter(kind="instance.status_changed").latest("id").created_at
    assert in_maintenance(instance_id=instance.pk)  # before any sync: the flag itself counts
    assert maintenance_flags_sync() == 1
    window = MaintenanceWindow.objects.get(origin="registry_flag")
    assert (window.instance_id, window.starts_at, window.ends_at, window.description) == (
        instance.pk,
        entered,
        None,
        "disk swap",
    )
    assert maintenance_flags_sync() == 0  # idempotent
    instance_set_maintenance(instance=instance, enabled=False)
    left = Event.objects.filter(kind="instance.status_changed").latest("id").created_at
    assert maintenance_flags_sync() == 1
    window.refresh_from_db()
    assert window.ends_at == left
    assert not in_maintenance(instance_id=instance.pk)
    assert in_maintenance(instance_id=instance.pk, at=entered + (left - entered) / 2)


def recurring(**fields) -> MaintenanceWindow:  # type: ignore[no-untyped-def]
    return MaintenanceWindow(name="weekly", scope="everything", kind="recurring", enabled=True, **fields)


def test_recurring_window_follows_the_wall_clock_across_dst() -> None:
    # Mondays 09:00 Paris for 30 min: 08:00 UTC in winter time, 07:00 UTC after the change of 29 March 2026.
    window = recurring(weekdays=[0], start_time=time(9, 0), duration_minutes=30, timezone="Europe/Paris")
    found = window_intervals(window, datetime(2026, 3, 20, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))
    assert found == [
        (datetime(2026, 3, 23, 8, 0, tzinfo=UTC), datetime(2026, 3, 23, 8, 30, tzinfo=UTC)),
        (datetime(2026, 3, 30, 7, 0, tzinfo=UTC), datetime(2026, 3, 30, 7, 30, tzinfo=UTC)),
    ]
    # New York changes on another date (8 March 2026) and the other way round in November.
    window = recurring(weekdays=[6], start_time=time(23, 30), duration_minutes=60, timezone="America/New_York")
    found = window_intervals(window, datetime(2026, 10, 31, tzinfo=UTC), datetime(2026, 11, 10, tzinfo=UTC))
    assert found == [
        (datetime(2026, 11, 2, 4, 30, tzinfo=UTC), datetime(2026, 11, 2, 5, 30, tzinfo=UTC)),  # EST, after 1 Nov
        (datetime(2026, 11, 9, 4, 30, tzinfo=UTC), datetime(2026, 11, 9, 5, 30, tzinfo=UTC)),
    ]
    found = window_intervals(window, datetime(2026, 10, 24, tzinfo=UTC), datetime(2026, 10, 27, tzinfo=UTC))
    assert found == [(datetime(2026, 10, 26, 3, 30, tzinfo=UTC), datetime(2026, 10, 26, 4, 30, tzinfo=UTC))]  # EDT


def test_recurring_window_at_a_time_skipped_or_repeated_by_dst() -> None:
    # Sundays 02:30 Paris: on 29 March 2026 02:30 does not exist (02:00 -> 03:00); read with the offset
    # before the change, it is 01:30 UTC (03:30 local). On 25 October 02:30 happens twice: the first, CEST.
    window = recurring(weekdays=[6], start_time=time(2, 30), duration_minutes=60, timezone="Europe/Paris")
    spring = window_intervals(window, datetime(2026, 3, 28, tzinfo=UTC), datetime(2026, 3, 30, tzinfo=UTC))
    assert spring == [(datetime(2026, 3, 29, 1, 30, tzinfo=UTC), datetime(2026, 3, 29, 2, 30, tzinfo=UTC))]
    autumn = window_intervals(window, datetime(2026, 10, 24, tzinfo=UTC), datetime(2026, 10, 26, tzinfo=UTC))
    assert autumn == [(datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 25, 1, 30, tzinfo=UTC))]
    # a long window starting before the range still covers its start; the window's own bounds hold
    window = recurring(
        weekdays=[5], start_time=time(22, 0), duration_minutes=24 * 60, timezone="Asia/Tokyo",
        starts_at=datetime(2026, 3, 1, tzinfo=UTC), ends_at=datetime(2026, 3, 8, 0, 0, tzinfo=UTC),
    )  # fmt: skip
    found = window_intervals(window, datetime(2026, 3, 7, 20, 0, tzinfo=UTC), datetime(2026, 3, 15, tzinfo=UTC))
    # Saturday 7 March 22:00 JST = 13:00 UTC, for 24 h, cut by the range start and the window's end
    assert found == [(datetime(2026, 3, 7, 20, 0, tzinfo=UTC), datetime(2026, 3, 8, 0, 0, tzinfo=UTC))]


@pytest.mark.django_db
def test_recurring_window_excluded_from_uptime_in_its_zone() -> None:
    RollupWatermark.objects.create(name="minute", position=T0)
    check = CheckFactory()
    write_results(check, T0, 360, status="critical")  # Monday 10:00-11:00 UTC = 11:00-12:00 Paris (CET)
    MaintenanceWindowFactory(
        kind="recurring", weekdays=[0], start_time=time(11, 30), duration_minutes=15, timezone="Europe/Paris"
    )
    roll(T0 + timedelta(hours=1, minutes=1))
    [result] = uptime_many(targets=[("check", str(check.pk))], windows=["1h"], now=T0 + timedelta(hours=1, minutes=1))[
        ("check", str(check.pk))
    ]
    assert result.maintenance == 900.0 and result.failing == 2700.0
