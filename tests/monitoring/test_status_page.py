"""The public status page and badges: public services only, nothing internal, incidents and maintenance, cached."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from monitoring.models import (
    Incident,
    IncidentUpdate,
    MaintenanceOrigin,
    MaintenanceWindow,
    StatusPageService,
)
from registry.models import CheckStatus, InstanceStatus
from tests.monitoring.test_dashboard_pages import status_points
from tests.registry.factories import CheckFactory, InstanceFactory, ServiceFactory

pytestmark = pytest.mark.django_db

SECRETS = (
    "10.20.30.40",
    "9443",
    "pay-primary-1",
    "tag-secret",
    "meta-secret",
    "healthz-secret",
    "connection refused by db-internal",
    "hidden-ledger",
    "Hidden Ledger",
    "ledger maintenance",
    "ledger incident",
)


@pytest.fixture(autouse=True)
def _fresh_cache():  # type: ignore[no-untyped-def]
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def fleet():  # type: ignore[no-untyped-def]
    """A public service (with internal details that must not show) and a private one."""
    public = ServiceFactory(
        name="payments", display_name="Payments", tags=["tag-secret"], metadata={"k": "meta-secret"}
    )
    instance = InstanceFactory(
        service=public, instance_id="pay-primary-1", address="10.20.30.40", port=9443, status=InstanceStatus.CRITICAL,
        tags=["tag-secret"], metadata={"owner": "meta-secret"},
    )  # fmt: skip
    CheckFactory(
        instance=instance,
        name="healthz-secret",
        status=CheckStatus.CRITICAL,
        output="connection refused by db-internal",
    )
    StatusPageService.objects.create(service=public, public=True, display_name="Payments", description="Card payments")
    private = ServiceFactory(name="hidden-ledger", display_name="Hidden Ledger")
    InstanceFactory(service=private, address="10.20.30.40", port=9443, status=InstanceStatus.PASSING)
    StatusPageService.objects.create(service=private, public=False)
    now = timezone.now()
    MaintenanceWindow.objects.create(
        name="ledger maintenance", scope="service", service=private, starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(hours=1),
    )  # fmt: skip
    incident = Incident.objects.create(title="ledger incident", started_at=now - timedelta(hours=2))
    incident.services.set([private])
    return public, private, instance


def test_status_page_shows_public_services_and_nothing_internal(client, fleet) -> None:  # type: ignore[no-untyped-def]
    public, _, _ = fleet
    status_points(public.pk, days={1: {"passing": 86400}, 2: {"passing": 43200, "critical": 43200}})
    response = client.get("/status/")
    html = response.content.decode()
    assert response.status_code == 200 and "Payments" in html and "Card payments" in html
    assert '<span aria-hidden="true">✖</span> down' in html  # the public word for critical, with its icon
    assert html.count('class="day ') == 90
    for secret in SECRETS:
        assert secret not in html, secret
    assert "/admin/" not in html and "/dashboard/" not in html


def test_badges_for_public_services_and_the_same_404_for_private_and_missing(client, fleet) -> None:  # type: ignore[no-untyped-def]
    public, _, _ = fleet
    status_points(public.pk, days={0: {"passing": 600}})
    for kind in ("status", "uptime-24h", "uptime-30d"):
        response = client.get(f"/status/badge/payments.svg?type={kind}")
        body = response.content.decode()
        assert response.status_code == 200 and response["Content-Type"] == "image/svg+xml", kind
        assert body.startswith("<svg") and "Payments" in body or "uptime" in body
        for secret in SECRETS:
            assert secret not in body, (kind, secret)
    assert "✖ down" in client.get("/status/badge/payments.svg").content.decode()
    private = client.get("/status/badge/hidden-ledger.svg")
    missing = client.get("/status/badge/no-such-service.svg")
    assert private.status_code == missing.status_code == 404
    assert private.content == missing.content  # a private name cannot be told from a missing one
    assert client.get("/status/badge/payments.svg?type=cpu").status_code == 400
    assert client.get("/status/badge/..%2Fetc.svg").status_code == 404


def test_incidents_with_updates_and_public_maintenance(client, fleet) -> None:  # type: ignore[no-untyped-def]
    public, private, instance = fleet
    now = timezone.now()
    incident = Incident.objects.create(
        title="Card declines", started_at=now - timedelta(minutes=30), status="identified"
    )
    incident.services.set([public])
    IncidentUpdate.objects.create(
        incident=incident, status="investigating", message="Looking into it", created_at=now - timedelta(minutes=30)
    )
    IncidentUpdate.objects.create(
        incident=incident, status="identified", message="A bad deploy", created_at=now - timedelta(minutes=10)
    )
    old = Incident.objects.create(
        title="Yesterday's outage",
        started_at=now - timedelta(days=1),
        status="resolved",
        resolved_at=now - timedelta(hours=20),
    )
    IncidentUpdate.objects.create(
        incident=old, status="resolved", message="Fixed", created_at=now - timedelta(hours=20)
    )
    MaintenanceWindow.objects.create(
        name="Network work",
        scope="everything",
        starts_at=now + timedelta(days=2),
        ends_at=now + timedelta(days=2, hours=1),
    )
    MaintenanceWindow.objects.create(
        name="pay-primary-1 maintenance flag", scope="instance", instance=instance, service=public,
        origin=MaintenanceOrigin.REGISTRY_FLAG, starts_at=now - timedelta(minutes=5),
    )  # fmt: skip
    html = client.get("/status/").content.decode()
    assert "Card declines" in html and "A bad deploy" in html and "Looking into it" in html
    assert html.index("Current incidents") < html.index("Card declines") < html.index("Past incidents")
    assert html.index("Past incidents") < html.index("Yesterday&#x27;s outage")
    assert "Network work" in html and "all services" in html
    assert "Scheduled maintenance" in html and "in progress" in html  # the flag's window, without its instance name
    for secret in SECRETS:
        assert secret not in html, secret


def test_status_page_is_cached_and_a_query_string_cannot_miss_the_cache(client, fleet) -> None:  # type: ignore[no-untyped-def]
    first = client.get("/status/")
    assert first["Cache-Control"].startswith("public, max-age=")
    StatusPageService.objects.filter(service__name="payments").update(display_name="Renamed")
    with CaptureQueriesContext(connection) as queries:
        again = client.get("/status/?bust=1")
        badge = client.get("/status/badge/payments.svg")
        badge_again = client.get("/status/badge/payments.svg?x=2")
    assert again.content == first.content
    assert badge.content == badge_again.content
    assert len([q for q in queries.captured_queries if "monitoring_" in q["sql"] or "registry_" in q["sql"]]) <= 4
    cache.clear()
    assert "Renamed" in client.get("/status/").content.decode()


def test_a_private_service_turned_public_appears_and_back(client, fleet) -> None:  # type: ignore[no-untyped-def]
    StatusPageService.objects.filter(service__name="hidden-ledger").update(public=True)
    assert "Hidden Ledger" in client.get("/status/").content.decode()
    assert client.get("/status/badge/hidden-ledger.svg").status_code == 200
    StatusPageService.objects.filter(service__name="hidden-ledger").update(public=False)
    cache.clear()
    assert "Hidden Ledger" not in client.get("/status/").content.decode()
    assert client.get("/status/badge/hidden-ledger.svg").status_code == 404


def test_uptime_percentage_excludes_maintenance_time(client) -> None:  # type: ignore[no-untyped-def]
    service = ServiceFactory(name="api")
    StatusPageService.objects.create(service=service, public=True)
    # Two full days: one passing, one half passing and half in maintenance: 100 % of the time outside maintenance.
    status_points(service.pk, days={1: {"passing": 86400}, 2: {"passing": 43200, "maintenance": 43200}})
    from monitoring.selectors.statuspage import public_services

    found = public_services()[0]
    elapsed_today = (timezone.now() - found.days[-1].day).total_seconds()
    # 90 days minus the maintenance; the unknown days (no data) count as not passing, as the rule says.
    expected = (86400 + 43200) / (89 * 86400 + elapsed_today - 43200)
    assert found.uptime_90d == pytest.approx(expected, rel=1e-6)
    statuses = [d.status for d in found.days]
    assert statuses[-2] == "passing" and statuses[-3] == "maintenance" and statuses[0] == "unknown"
    assert re.search(r"\d+\.\d\d% uptime, 90 days", client.get("/status/").content.decode())
