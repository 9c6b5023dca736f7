"""Every dashboard list is paginated and searchable on the server: a service's instances, the overview's
maintenance in effect and flapping targets, the alerts page's maintenance windows."""

from __future__ import annotations

from datetime import time, timedelta

import pytest
from django.utils import timezone

from monitoring.models import AlertRule, AlertState, MaintenanceWindow
from monitoring.selectors.dashboard_maintenance import maintenance_now
from registry.models import CheckStatus
from tests.registry.factories import CheckFactory, InstanceFactory, ServiceFactory

pytestmark = pytest.mark.django_db


def main(html: bytes) -> str:
    return html.decode().split("<main>")[1]


def test_a_service_page_lists_one_page_of_instances_with_their_checks_and_searches_them(admin_client) -> None:  # type: ignore[no-untyped-def]
    service = ServiceFactory(name="fleet")
    for index in range(30):
        instance = InstanceFactory(service=service, instance_id=f"node-{index:02d}", address=f"10.0.0.{index}")
        CheckFactory(instance=instance, name=f"probe-{index:02d}", status=CheckStatus.PASSING)
    first = main(admin_client.get("/dashboard/services/fleet/").content)
    assert "node-00" in first and "probe-00" in first and "node-24" in first
    assert "node-25" not in first and "probe-25" not in first
    assert "Instances and checks (30)" in first and "page 1 of 2 (30)" in first and "q=&amp;page=2" in first
    second = main(admin_client.get("/dashboard/services/fleet/?page=2").content)
    assert "node-29" in second and "probe-29" in second and "node-00" not in second
    found = main(admin_client.get("/dashboard/services/fleet/?q=10.0.0.7").content)
    assert "node-07" in found and "node-08" not in found and "Instances and checks (1)" in found
    assert "No instance matches." in main(admin_client.get("/dashboard/services/fleet/?q=nope").content)
    assert admin_client.get("/dashboard/services/fleet/?page=abc&q=node").status_code == 200


def test_the_overview_pages_and_searches_the_maintenance_in_effect(admin_client) -> None:  # type: ignore[no-untyped-def]
    now = timezone.now()
    for index in range(12):
        MaintenanceWindow.objects.create(
            name=f"upgrade-{index:02d}",
            scope="service",
            service=ServiceFactory(name=f"db-{index:02d}"),
            starts_at=now - timedelta(minutes=index + 1),
            ends_at=None if index % 2 else now + timedelta(hours=1),
        )
    MaintenanceWindow.objects.create(
        name="finished-window", scope="everything", starts_at=now - timedelta(hours=2), ends_at=now
    )
    MaintenanceWindow.objects.create(name="later", scope="everything", starts_at=now + timedelta(hours=1))
    MaintenanceWindow.objects.create(
        name="nightly", scope="everything", kind="recurring", weekdays=list(range(7)), start_time=time(0, 0),
        duration_minutes=24 * 60, timezone="Europe/Paris",
    )  # fmt: skip
    MaintenanceWindow.objects.create(
        name="never-now", scope="everything", kind="recurring", weekdays=[(now.weekday() + 3) % 7],
        start_time=time(0, 0), duration_minutes=60, timezone="UTC",
    )  # fmt: skip
    html = main(admin_client.get("/dashboard/").content)
    assert "Maintenance now (13)" in html and "page 1 of 2 (13)" in html
    assert "nightly" in html and "finished-window" not in html and "later" not in html and "never-now" not in html
    # The running recurring window first, then the one-offs by start time (the oldest started first).
    assert html.index("nightly") < html.index("upgrade-11") < html.index("upgrade-03")
    assert "upgrade-02" not in html and "maintenance_q=&amp;maintenance_page=2" in html
    second = main(admin_client.get("/dashboard/?maintenance_page=2").content)
    assert "upgrade-00" in second and "upgrade-01" in second and "upgrade-02" in second and "nightly" not in second
    found = main(admin_client.get("/dashboard/?maintenance_q=db-07").content)
    assert "Maintenance now (1)" in found and "upgrade-07" in found and "nightly" not in found
    assert [w.name for w in maintenance_now(search="night", page=1)] == ["nightly"]


def test_the_overview_pages_its_flapping_targets(admin_client) -> None:  # type: ignore[no-untyped-def]
    rule = AlertRule.objects.create(name="flappy", target_kind="service", metric="status")
    now = timezone.now()
    for index in range(12):
        AlertState.objects.create(
            rule=rule, target_key=f"target-{index:02d}", fingerprint=f"f{index}", status="firing", flapping=True,
            flapping_since=now - timedelta(minutes=index),
        )  # fmt: skip
    html = main(admin_client.get("/dashboard/").content)
    flapping = html.split('id="flapping"')[1].split("</ul>")[0]
    assert (
        flapping.count('data-status="flapping"') == 10
        and "⇅</span> flapping" in flapping
        and "target-11" not in flapping
    )
    assert "flapping_page=2" in html
    second = main(admin_client.get("/dashboard/?flapping_page=2").content).split('id="flapping"')[1].split("</ul>")[0]
    assert "target-10" in second and "target-11" in second and "target-00" not in second


def test_the_alerts_page_searches_its_maintenance_windows(admin_client) -> None:  # type: ignore[no-untyped-def]
    now = timezone.now()
    for name in ("kernel-patch", "disk-swap"):
        MaintenanceWindow.objects.create(
            name=name, scope="everything", starts_at=now + timedelta(hours=1), ends_at=now + timedelta(hours=2)
        )
    html = main(admin_client.get("/dashboard/alerts/?maintenance_q=kernel").content)
    table = html.split('id="maintenance"')[1].split("</table>")[0]
    assert "kernel-patch" in table and "disk-swap" not in table
    assert 'name="maintenance_q" value="kernel"' in html
