"""Migrations match the models; the demo data loads once and its checks pass against a live target."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from registry.demo import load_demo
from registry.models import Check, Instance, Service
from tests.registry.test_scheduling import tick


@pytest.mark.django_db
def test_migrations_are_in_sync_with_models():
    out = StringIO()
    call_command("makemigrations", "registry", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


@pytest.mark.django_db
def test_demo_loads_idempotently_and_passes_against_the_control_plane(settings, http_target):
    settings.CONTROLPLANE_PUBLIC_URL = http_target.url("")  # stands in for the running control plane
    load_demo()
    load_demo()
    assert set(Service.objects.values_list("name", flat=True)) == {"controlplane", "demo-batch-worker"}
    assert Instance.objects.count() == 2 and Check.objects.count() == 3
    tick()
    cp = Instance.objects.get(service__name="controlplane")
    assert cp.status == "passing" and cp.port == http_target.port
    assert set(Check.objects.filter(instance=cp).values_list("status", flat=True)) == {"passing"}
    assert Check.objects.get(kind="ttl").status == "unknown"


def test_schedules_are_registered_once(db):
    from django_celery_beat.models import PeriodicTask

    names = set(PeriodicTask.objects.filter(task__startswith="registry.").values_list("task", flat=True))
    assert names == {
        "registry.tasks.dispatch_due_checks",
        "registry.tasks.reap_critical_instances",
        "registry.tasks.prune_check_results",
    }
    dispatch = PeriodicTask.objects.get(task="registry.tasks.dispatch_due_checks")
    assert dispatch.interval.every == 1 and dispatch.interval.period == "seconds"
