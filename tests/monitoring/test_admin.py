"""Maintenance windows in the admin: created and changed through the services (events), refused when bad."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from controlplane.events.models import Event
from monitoring.models import MaintenanceWindow
from tests.monitoring.factories import MaintenanceWindowFactory

pytestmark = pytest.mark.django_db
ADD = "/admin/monitoring/maintenancewindow/add/"


@pytest.fixture
def staff(client):  # type: ignore[no-untyped-def]
    user = User.objects.create_superuser("ops", "ops@example.com", "pw-123456789")
    client.force_login(user)
    return client


def form(**fields: object) -> dict:
    return {
        "name": "nightly",
        "description": "",
        "scope": "everything",
        "kind": "recurring",
        "weekdays": "[0, 1, 2, 3, 4]",
        "start_time": "02:00",
        "duration_minutes": "30",
        "timezone": "Europe/Paris",
        "enabled": "on",
        **fields,
    }


def test_admin_creates_a_window_through_the_service(staff) -> None:
    response = staff.post(ADD, form())
    assert response.status_code == 302, response.content.decode()[:2000]
    window = MaintenanceWindow.objects.get()
    assert window.created_by == "user:ops" and window.weekdays == [0, 1, 2, 3, 4]
    assert Event.objects.filter(kind="maintenance.created", subject="nightly").exists()


@pytest.mark.parametrize(
    "fields",
    [{"timezone": "Europe/Nowhere"}, {"weekdays": "[9]"}, {"scope": "service"}, {"kind": "one_off"}],
)
def test_admin_refuses_a_bad_window(staff, fields) -> None:  # type: ignore[no-untyped-def]
    response = staff.post(ADD, form(**fields))
    assert response.status_code == 200 and b"errorlist" in response.content
    assert not MaintenanceWindow.objects.exists()


def test_registry_flag_windows_are_read_only(staff) -> None:
    window = MaintenanceWindowFactory(origin="registry_flag", starts_at="2026-01-01T00:00:00Z")
    url = f"/admin/monitoring/maintenancewindow/{window.pk}/change/"
    assert staff.post(url, form(name="renamed")).status_code == 403
    window.refresh_from_db()
    assert window.name != "renamed"
