"""The dashboard's polling fallback in a real Chromium: under a WSGI server the stream answers 204, the page
polls /dashboard/live/state/ and still patches itself in place — the service row, and the recent
transitions list with both statuses as icon and word — without a reload."""

from __future__ import annotations

import pytest

from controlplane.events.services import emit
from registry.models import InstanceStatus
from tests.registry.factories import InstanceFactory, ServiceFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_transition_reaches_the_overview_by_polling_without_a_reload(admin_login) -> None:  # type: ignore[no-untyped-def]
    page, base = admin_login
    instance = InstanceFactory(service=ServiceFactory(name="orders"), instance_id="orders-1")
    emit("service.created", subject="orders")  # the page starts after an event (an empty log is its own case)
    page.goto(f"{base}/dashboard/")
    page.wait_for_selector('#live-indicator[data-state="polling"]')  # the stream answered 204 under WSGI
    page.evaluate("window.__marker = 'still-here'")
    assert "orders-1" not in page.inner_text("#transitions")
    type(instance).objects.filter(pk=instance.pk).update(status=InstanceStatus.CRITICAL)
    emit(
        "instance.status_changed",
        subject="orders/orders-1",
        data={"service": "orders", "old": "passing", "new": "critical", "output": "db-internal refused"},
    )
    row = f'[data-service-id="{instance.service_id}"]'
    page.wait_for_selector(f'{row} [data-status="critical"]', timeout=10000)
    page.wait_for_selector('#transitions li:has-text("orders/orders-1") [data-status="critical"]', timeout=5000)
    line = page.inner_text('#transitions li:has-text("orders/orders-1")')
    assert "passing" in line and "critical" in line and "\u2716" in line  # icon and word, never colour alone
    assert "db-internal" not in page.content()  # event data other than the two statuses is not sent live
    assert page.evaluate("window.__marker") == "still-here"  # patched in place, not reloaded
