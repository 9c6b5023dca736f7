"""Each page costs the same number of SQL queries at two fleet sizes (the Uptime Kuma lesson: nothing per service)."""

from __future__ import annotations

from datetime import time, timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from controlplane.events.models import Event
from monitoring.models import (
    AlertRule,
    AlertState,
    Incident,
    MaintenanceWindow,
    RollupWatermark,
    Silence,
    StatusPageService,
)
from monitoring.points import floor_time
from registry.models import CheckStatus, InstanceStatus, Service
from tests.monitoring.test_dashboard_pages import status_points
from tests.registry.factories import CheckFactory, InstanceFactory, ServiceFactory

pytestmark = pytest.mark.django_db

PAGES = ["/dashboard/", "/dashboard/services/svc-0/", "/dashboard/alerts/", "/dashboard/events/", "/status/"]
MORE_PAGES = [
    "/dashboard/?q=svc&status=critical",
    "/dashboard/?status=passing&page=2",
    "/dashboard/?flapping_page=2&maintenance_page=2&maintenance_q=m",
    "/dashboard/services/svc-0/?q=extra&page=2",
    "/dashboard/alerts/?maintenance_q=m1&silence_q=c&maintenance_page=2",
    "/dashboard/pipelines/",
    "/status/badge/svc-1.svg",
    "/status/badge/svc-1.svg?type=uptime-30d",
]


def grow(start: int, stop: int) -> None:
    """Services start..stop-1, each with an instance, a check, history, events, an alert, and a public flag;
    and as many more instances of svc-0 (its page lists them), flapping alerts and recurring windows."""
    now = timezone.now()
    rule, _ = AlertRule.objects.get_or_create(name="down", defaults={"target_kind": "service", "metric": "status"})
    statuses = [InstanceStatus.PASSING, InstanceStatus.CRITICAL, InstanceStatus.WARNING]
    for index in range(start, stop):
        service = ServiceFactory(name=f"svc-{index}")
        instance = InstanceFactory(service=service, status=statuses[index % 3])
        CheckFactory(instance=instance, status=CheckStatus.PASSING)
        StatusPageService.objects.create(service=service, public=True)
        status_points(service.pk, days={1: {"passing": 80000, "critical": 6400}, 2: {"passing": 86400}}, now=now)
        Event.objects.create(
            kind="check.status_changed",
            subject=f"svc-{index}/i/c",
            data={"service": service.name, "old": "passing", "new": "critical"},
        )
        AlertState.objects.create(
            rule=rule,
            target_key=f"service:{service.pk}",
            fingerprint=f"f{index}",
            status="firing",
            labels={"service": service.name},
            active_since=now,
        )
        incident = Incident.objects.create(title=f"incident {index}", started_at=now - timedelta(hours=1))
        incident.services.set([service])
        MaintenanceWindow.objects.create(
            name=f"m{index}",
            scope="service",
            service=service,
            starts_at=now - timedelta(minutes=1),
            ends_at=now + timedelta(hours=1),
        )
        MaintenanceWindow.objects.create(
            name=f"m-weekly-{index}",
            scope="service",
            service=service,
            kind="recurring",
            weekdays=list(range(7)),
            start_time=time(0, 0),
            duration_minutes=24 * 60,
        )
        extra = InstanceFactory(service=Service.objects.get(name="svc-0"), instance_id=f"extra-{index}")
        CheckFactory(instance=extra, status=CheckStatus.CRITICAL)
        CheckFactory(instance=extra, name="second", status=CheckStatus.PASSING)
        AlertState.objects.create(
            rule=rule,
            target_key=f"service:{service.pk}/flap",
            fingerprint=f"flap{index}",
            status="firing",
            flapping=True,
            flapping_since=now,
        )
        Silence.objects.create(
            matchers=[{"name": "service", "op": "=", "value": service.name}],
            starts_at=now,
            ends_at=now + timedelta(hours=1),
            author="a",
            comment="c",
        )


def count_queries(client, path: str, *, clear: str = "all") -> int:  # type: ignore[no-untyped-def]
    if clear == "all":
        cache.clear()
    else:  # the status page's own entry only: the bars' final days stay cached, as between two builds
        cache.delete("monitoring:status:page")
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return len(captured.captured_queries)


def test_every_page_costs_the_same_queries_at_two_fleet_sizes(admin_client) -> None:  # type: ignore[no-untyped-def]
    grow(0, 4)
    small = {path: count_queries(admin_client, path) for path in PAGES}
    grow(4, 60)
    large = {path: count_queries(admin_client, path) for path in PAGES}
    assert small == large
    assert all(n <= 30 for n in large.values()), large


def test_with_rolled_up_history_every_page_costs_the_same_queries_at_two_fleet_sizes(admin_client, client) -> None:  # type: ignore[no-untyped-def]
    """A running system: roll-up watermarks set, so the bars are summed in SQL and their final days cached."""
    now = timezone.now()
    for name, position in (("day", floor_time(now, 86400)), ("hour", floor_time(now, 3600)), ("minute", now)):
        RollupWatermark.objects.create(name=name, position=position)

    def measure() -> dict[str, int]:
        found = {path: count_queries(admin_client, path) for path in [*PAGES, *MORE_PAGES]}
        found["/status/ (final days cached)"] = count_queries(client, "/status/", clear="page")
        found["/status/ (anonymous, cold)"] = count_queries(client, "/status/")
        return found

    grow(0, 4)
    small = measure()
    grow(4, 60)
    large = measure()
    assert small == large
    assert large["/status/ (final days cached)"] == large["/status/ (anonymous, cold)"]
    assert all(n <= 30 for n in large.values()), large
