"""Each page costs the same number of SQL queries at two fleet sizes (the Uptime Kuma lesson: nothing per service)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from controlplane.events.models import Event
from monitoring.models import AlertRule, AlertState, Incident, MaintenanceWindow, Silence, StatusPageService
from registry.models import CheckStatus, InstanceStatus
from tests.monitoring.test_dashboard_pages import status_points
from tests.registry.factories import CheckFactory, InstanceFactory, ServiceFactory

pytestmark = pytest.mark.django_db

PAGES = ["/dashboard/", "/dashboard/services/svc-0/", "/dashboard/alerts/", "/dashboard/events/", "/status/"]


def grow(start: int, stop: int) -> None:
    """Services start..stop-1, each with an instance, a check, history, events, an alert, and a public flag."""
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
        Silence.objects.create(
            matchers=[{"name": "service", "op": "=", "value": service.name}],
            starts_at=now,
            ends_at=now + timedelta(hours=1),
            author="a",
            comment="c",
        )


def count_queries(client, path: str) -> int:  # type: ignore[no-untyped-def]
    cache.clear()
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
