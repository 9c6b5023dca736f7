"""What the status page shows, written in the admin: services marked public, incidents and their updates
(through monitoring.services.incidents: events, the incident's status following its newest update)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.utils import timezone

from controlplane.events.models import Event
from monitoring.models import Incident, IncidentUpdate, StatusPageService
from monitoring.services.incidents import incident_create, incident_update_add
from tests.registry.factories import ServiceFactory

pytestmark = pytest.mark.django_db
LISTING_ADD = "/admin/monitoring/statuspageservice/add/"
INCIDENT_ADD = "/admin/monitoring/incident/add/"


@pytest.fixture
def staff(client):  # type: ignore[no-untyped-def]
    client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw-123456789"))
    return client


def updates(*rows: tuple[str, str], existing: int = 0) -> dict[str, str]:
    """The inline formset's fields: new update rows (status, message) after `existing` stored ones."""
    data = {
        "updates-TOTAL_FORMS": str(existing + len(rows)),
        "updates-INITIAL_FORMS": str(existing),
        "updates-MIN_NUM_FORMS": "0",
        "updates-MAX_NUM_FORMS": "1000",
    }
    for index, (status, message) in enumerate(rows, start=existing):
        data[f"updates-{index}-status"] = status
        data[f"updates-{index}-message"] = message
    return data


def incident_form(service_ids: str = "", **fields: str) -> dict[str, str]:
    started = timezone.localtime(timezone.now() - timedelta(minutes=10))
    return {
        "title": "Card payments failing",
        "started_at_0": started.strftime("%Y-%m-%d"),
        "started_at_1": started.strftime("%H:%M:%S"),
        "services": service_ids,
        **fields,
    }


def test_a_service_marked_public_in_the_admin_appears_on_the_status_page(staff, client) -> None:  # type: ignore[no-untyped-def]
    service = ServiceFactory(name="payments")
    form = {
        "service": str(service.pk),
        "public": "on",
        "display_name": "Payments",
        "description": "Cards",
        "position": "1",
    }
    response = staff.post(LISTING_ADD, form)
    assert response.status_code == 302, response.content.decode()[:2000]
    row = StatusPageService.objects.get()
    assert row.public and row.display_name == "Payments"
    assert Event.objects.filter(kind="statuspage.listing_changed", subject="payments", actor="user:ops").exists()
    cache.clear()
    assert "Payments" in client.get("/status/").content.decode()
    # The same service twice is a field error; the service of a listing cannot be swapped.
    again = staff.post(LISTING_ADD, form)
    assert again.status_code == 200 and b"errorlist" in again.content
    assert StatusPageService.objects.count() == 1
    change = f"/admin/monitoring/statuspageservice/{row.pk}/change/"
    staff.post(change, {**form, "service": str(ServiceFactory(name="other").pk), "public": ""})
    row.refresh_from_db()
    assert row.service_id == service.pk and not row.public
    cache.clear()
    assert "Payments" not in client.get("/status/").content.decode()


def test_an_incident_written_in_the_admin_follows_its_updates_on_the_status_page(staff, client) -> None:  # type: ignore[no-untyped-def]
    service = ServiceFactory(name="payments")
    StatusPageService.objects.create(service=service, public=True, display_name="Payments")
    response = staff.post(
        INCIDENT_ADD, {**incident_form(str(service.pk)), **updates(("investigating", "Card payments time out."))}
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    incident = Incident.objects.get()
    assert incident.status == "investigating" and incident.resolved_at is None
    assert list(incident.services.values_list("name", flat=True)) == ["payments"]
    assert incident.updates.get().author == "user:ops"
    cache.clear()
    page = client.get("/status/").content.decode()
    assert "Current incidents" in page and "Card payments time out." in page
    # Two more updates in one save: the incident ends in the last one's status; stored updates stay as written.
    change = f"/admin/monitoring/incident/{incident.pk}/change/"
    assert staff.get(INCIDENT_ADD).status_code == staff.get(change).status_code == 200
    first = incident.updates.get()
    response = staff.post(
        change,
        {
            **incident_form(str(service.pk)),
            **updates(("identified", "A certificate expired."), ("resolved", "Renewed."), existing=1),
            "updates-0-id": str(first.pk),
            "updates-0-incident": str(incident.pk),
            "updates-0-status": "resolved",
            "updates-0-message": "rewritten history",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    incident.refresh_from_db()
    assert incident.status == "resolved" and incident.resolved_at is not None
    assert list(incident.updates.order_by("id").values_list("status", "message")) == [
        ("investigating", "Card payments time out."),
        ("identified", "A certificate expired."),
        ("resolved", "Renewed."),
    ]
    assert Event.objects.filter(kind="incident.updated").count() == 3
    cache.clear()
    page = client.get("/status/").content.decode()
    assert "Current incidents" not in page
    history = page[page.index("Past incidents") :]
    assert "Card payments failing" in history and "A certificate expired." in history


@pytest.mark.parametrize(
    "fields",
    [
        {"title": ""},
        {"started_at_0": "2999-01-01"},  # in the future
        {"started_at_0": "not a date"},
        {"services": "999999"},
        {"updates-0-status": "panicking"},
        {"updates-0-message": ""},
    ],
)
def test_bad_incidents_are_field_errors_and_save_nothing(staff, fields) -> None:  # type: ignore[no-untyped-def]
    data = {**incident_form(), **updates(("investigating", "Looking into it.")), **fields}
    response = staff.post(INCIDENT_ADD, data)
    assert response.status_code == 200 and b"errorlist" in response.content
    assert not Incident.objects.exists() and not IncidentUpdate.objects.exists()
    assert not Event.objects.filter(kind__startswith="incident.").exists()


def test_an_update_after_a_resolution_reopens_and_a_back_dated_one_changes_nothing() -> None:
    now = timezone.now()
    incident = incident_create(title="Slow API", started_at=now - timedelta(hours=2))
    incident_update_add(incident=incident, status="investigating", message="Slow.", at=now - timedelta(minutes=90))
    incident_update_add(incident=incident, status="resolved", message="Fixed.", at=now - timedelta(minutes=30))
    incident.refresh_from_db()
    assert (incident.status, incident.resolved_at) == ("resolved", now - timedelta(minutes=30))
    # A back-dated note goes into the history; the incident stays resolved.
    incident_update_add(incident=incident, status="monitoring", message="Noted late.", at=now - timedelta(hours=1))
    incident.refresh_from_db()
    assert incident.status == "resolved" and incident.resolved_at is not None
    incident_update_add(incident=incident, status="investigating", message="It is back.", at=now)
    incident.refresh_from_db()
    assert (incident.status, incident.resolved_at) == ("investigating", None)
    with pytest.raises(Exception, match="older than the incident"):
        incident_update_add(incident=incident, status="identified", message="x", at=now - timedelta(days=1))
    assert incident.updates.count() == 4
