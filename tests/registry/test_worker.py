"""The production path with a real Celery worker: dispatcher -> broker -> batch task -> results.

The dispatcher runs in the test process (as beat would trigger it); the batches run in the worker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from controlplane.events.models import Event
from registry.models import Check, CheckResult
from registry.tasks import dispatch_due_checks
from tests.registry.factories import CheckFactory, InstanceFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def wait_for(predicate, timeout: float = 30.0, every: float = 0.1):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not met in time")


def test_dispatcher_and_worker_turn_checks_passing_then_critical(celery_worker_process, http_target):
    instance = InstanceFactory(address=http_target.host, port=http_target.port)
    checks = [CheckFactory(instance=instance, kind="http", path="/toggle", interval=3600) for _ in range(5)]
    assert dispatch_due_checks() == 5
    wait_for(lambda: set(Check.objects.values_list("status", flat=True)) == {"passing"})
    assert not Check.objects.exclude(claim_token="").exists()
    http_target.state["status"] = 503
    Check.objects.update(next_run_at=timezone.now())
    assert dispatch_due_checks() == 5
    wait_for(lambda: set(Check.objects.values_list("status", flat=True)) == {"critical"})
    assert CheckResult.objects.count() == 10
    assert Event.objects.filter(kind="check.status_changed").count() == 10
    instance.refresh_from_db()
    assert instance.status == "critical"
    assert {c.pk for c in checks} == set(Check.objects.values_list("pk", flat=True))


def _kill_tree(pid: int) -> None:
    """SIGKILL the worker we started and its pool children (by pid), as an OOM kill or power loss would."""
    children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout.split()
    os.kill(pid, signal.SIGKILL)
    for child in children:
        try:
            os.kill(int(child), signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_worker_killed_mid_batch_leaves_no_check_stuck(celery_worker_process, http_target, settings):
    settings.REGISTRY_CLAIM_LEASE_SECONDS = 2  # the lease is stamped by the dispatcher (this process)
    instance = InstanceFactory(address=http_target.host, port=http_target.port)
    check = CheckFactory(instance=instance, kind="http", path="/maybe-hang", interval=10, timeout=8)
    http_target.state["hang"] = True
    assert dispatch_due_checks() == 1
    wait_for(lambda: http_target.state["hits"] >= 1)  # the worker is inside the probe
    _kill_tree(celery_worker_process.pid)
    celery_worker_process.wait(10)
    check.refresh_from_db()
    assert check.claim_token and check.status == "unknown"  # claimed, never settled
    assert dispatch_due_checks() == 0  # lease still running
    time.sleep(2.1)
    http_target.state["hang"] = False
    # The lapsed claim is taken again by a later tick; here that tick's batch runs in-process.
    from registry import services

    claim = services.checks_claim_due(lookahead=0)
    assert claim.check_ids == [check.pk]
    assert services.checks_run_batch(check_ids=claim.check_ids, token=claim.token) == 1
    check.refresh_from_db()
    assert check.status == "passing" and check.claim_token == "" and check.claimed_until is None
    assert check.next_run_at > timezone.now() + timedelta(seconds=5)
