"""Admin pages render with badges and counts, filters work, and actions go through the services."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from controlplane.events.models import Event
from registry import services
from registry.models import Check, CheckResult, Instance
from tests.registry.factories import CheckFactory, InstanceFactory, ServiceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):  # type: ignore[no-untyped-def]
    user = get_user_model().objects.create_superuser("root", "", "pw-for-tests-only")
    client.force_login(user)
    return client


def test_service_changelist_shows_badges_counts_and_filters(staff_client):
    billing = ServiceFactory(name="billing", type="http_api", tags=["eu"])
    ServiceFactory(name="search", type="database", tags=["us"])
    InstanceFactory(service=billing, status="critical")
    InstanceFactory(service=billing, status="passing")
    page = staff_client.get("/admin/registry/service/").content.decode()
    assert "billing" in page and "search" in page
    assert "#c62828" in page and "#2e7d32" in page  # critical and passing badges
    filtered = staff_client.get("/admin/registry/service/?status=critical").content.decode()
    assert "billing" in filtered and ">search<" not in filtered
    by_tag = staff_client.get("/admin/registry/service/?tag=us").content.decode()
    assert ">search<" in by_tag and ">billing<" not in by_tag
    assert ">search<" in staff_client.get("/admin/registry/service/?type__exact=database").content.decode()
    assert ">billing<" in staff_client.get("/admin/registry/service/?q=bill").content.decode()
    detail = staff_client.get(f"/admin/registry/service/{billing.pk}/change/").content.decode()
    assert "http://127.0.0.1:8080" in detail  # instances inline


def test_service_created_in_admin_emits_the_event(staff_client):
    response = staff_client.post(
        "/admin/registry/service/add/",
        {
            "name": "orders",
            "type": "http_api",
            "tags": "[]",
            "capabilities": "[]",
            "metadata": "{}",
            "instances-TOTAL_FORMS": "0",
            "instances-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    event = Event.objects.get(kind="service.created")
    assert (event.subject, event.actor) == ("orders", "user:root")


def test_check_admin_shows_lag_results_and_actions(staff_client):
    check = CheckFactory(next_run_at=timezone.now() - timezone.timedelta(seconds=30))
    CheckResult.objects.create(
        health_check=check, created_at=timezone.now(), status="passing", latency_ms=12.5, output="fine"
    )
    listing = staff_client.get("/admin/registry/check/").content.decode()
    assert "s late" in listing
    detail = staff_client.get(f"/admin/registry/check/{check.pk}/change/").content.decode()
    assert "12.5 ms" in detail and "fine" in detail

    def act(action: str) -> None:
        response = staff_client.post("/admin/registry/check/", {"action": action, "_selected_action": [check.pk]})
        assert response.status_code == 302

    act("disable")
    assert Check.objects.get().enabled is False
    act("enable")
    assert Check.objects.get().enabled is True
    Check.objects.update(next_run_at=timezone.now() + timezone.timedelta(hours=1))
    act("run_now")
    assert Check.objects.get().next_run_at <= timezone.now()
    act("maintenance_on")
    assert Instance.objects.get().status == "maintenance"
    act("maintenance_off")
    assert Instance.objects.get().status != "maintenance"


def test_instance_admin_delete_deregisters(staff_client):
    instance, _ = services.instance_register(service=ServiceFactory(), instance_id="x", address="127.0.0.1", port=80)
    response = staff_client.post(f"/admin/registry/instance/{instance.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert Instance.objects.count() == 0
    assert Event.objects.get(kind="instance.deregistered").actor == "user:root"
