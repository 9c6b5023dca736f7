"""Alert rows on the dashboard: every alert state has its own icon and word (never the unknown `?`, never
colour alone), and a target is named as people name it, not by its internal key."""

from __future__ import annotations

import pytest
from django.utils import timezone

from monitoring.models import AlertRule, AlertState
from tests.registry.factories import InstanceFactory, ServiceFactory

pytestmark = pytest.mark.django_db


def alert(
    rule: AlertRule, status: str, *, service: str, instance: str, service_pk: int, instance_pk: int, **extra
) -> None:  # type: ignore[no-untyped-def]
    AlertState.objects.create(
        rule=rule,
        target_key=f"service:{service_pk}/instance:{instance_pk}",
        fingerprint=f"{status}-{instance}",
        status=status,
        labels={"target_kind": "instance", "target": f"{service}/{instance}", "service": service, "instance": instance},
        active_since=timezone.now(),
        **extra,
    )


def test_alert_states_have_their_own_icons_and_targets_their_names(admin_client) -> None:  # type: ignore[no-untyped-def]
    service = ServiceFactory(name="demo-batch-worker")
    one = InstanceFactory(service=service, instance_id="worker-1")
    two = InstanceFactory(service=service, instance_id="worker-2")
    rule = AlertRule.objects.create(name="worker down", target_kind="labels", metric="status")
    alert(rule, "firing", service=service.name, instance="worker-1", service_pk=service.pk, instance_pk=one.pk,
          flapping=True, flapping_since=timezone.now())  # fmt: skip
    alert(rule, "pending", service=service.name, instance="worker-2", service_pk=service.pk, instance_pk=two.pk)
    html = admin_client.get("/dashboard/alerts/").content.decode()
    firing = html.split('id="firing-alerts"')[1].split("</table>")[0]
    pending = html.split('id="pending-alerts"')[1].split("</table>")[0]
    assert '<span class="st st-firing" data-status="firing"><span aria-hidden="true">!</span> firing</span>' in firing
    assert '<span aria-hidden="true">⇅</span> flapping' in firing
    assert '<span aria-hidden="true">…</span> pending' in pending
    assert '<span aria-hidden="true">?</span>' not in firing + pending  # no state falls back to "unknown"
    # The Target column: the service/instance label, linked to the service page; the key only as a tooltip.
    assert ">demo-batch-worker/worker-1</a>" in firing and 'href="/dashboard/services/demo-batch-worker/"' in firing
    assert ">demo-batch-worker/worker-2</a>" in pending
    assert f">service:{service.pk}/instance:{one.pk}<" not in firing
    found = admin_client.get("/dashboard/alerts/?q=worker-2").content.decode()
    assert "demo-batch-worker/worker-2" in found and "demo-batch-worker/worker-1" not in found
    # The overview's firing list and the service page name the target the same way.
    overview = admin_client.get("/dashboard/").content.decode().split('id="firing"')[1].split("</ul>")[0]
    assert ">demo-batch-worker/worker-1</a>" in overview and '<span aria-hidden="true">!</span> firing' in overview
    page = admin_client.get("/dashboard/services/demo-batch-worker/").content.decode()
    assert ">demo-batch-worker/worker-1</a>" in page


def test_an_alert_without_labels_shows_its_key(admin_client) -> None:  # type: ignore[no-untyped-def]
    rule = AlertRule.objects.create(name="api slow", target_kind="system", metric="status")
    AlertState.objects.create(
        rule=rule, target_key="system", fingerprint="s", status="firing", active_since=timezone.now()
    )
    firing = admin_client.get("/dashboard/alerts/").content.decode().split('id="firing-alerts"')[1].split("</table>")[0]
    assert "<td>system</td>" in firing


def test_cells_the_live_script_patches_are_marked_on_the_page(admin_client) -> None:  # type: ignore[no-untyped-def]
    """live.js finds the service page's instance and check cells, the overview's alert list and the alerts page's
    first pages by these marks (tests/monitoring/test_live_payload.py checks what the messages carry for them)."""
    from tests.registry.factories import CheckFactory

    instance = InstanceFactory(service=ServiceFactory(name="orders"), instance_id="o-1")
    check = CheckFactory(instance=instance, name="http")
    page = admin_client.get("/dashboard/services/orders/").content.decode()
    assert 'class="inst-status" data-instance-key="orders/o-1"' in page
    assert f'data-check-id="{check.pk}"' in page
    assert 'data-live-alerts="overview"' in admin_client.get("/dashboard/").content.decode()
    alerts = admin_client.get("/dashboard/alerts/").content.decode()
    assert 'data-live-alerts="firing"' in alerts and 'data-live-alerts="pending"' in alerts
    assert 'data-alert-count="firing">0<' in alerts and "data-last-event=" in alerts
    searched = admin_client.get("/dashboard/alerts/?q=x").content.decode()
    assert "data-live-alerts" not in searched  # a search result is not replaced by the unsearched first page
