"""Dispatcher claims and batch runs against real targets: thresholds, transitions, leases, races."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from controlplane.events.models import Event
from registry import services
from registry.models import Check, CheckResult, Instance
from tests.registry.factories import CheckFactory, InstanceFactory


def http_check(target, path: str = "/toggle", **fields) -> Check:  # type: ignore[no-untyped-def]
    instance = fields.pop("instance", None) or InstanceFactory(address=target.host, port=target.port)
    return CheckFactory(instance=instance, kind="http", path=path, **fields)


def tick() -> int:
    """One dispatcher tick run in-process: claim, then run every batch here."""
    claim = services.checks_claim_due(lookahead=0)
    return services.checks_run_batch(check_ids=claim.check_ids, token=claim.token) if claim.check_ids else 0


def make_due(*checks: Check) -> None:
    Check.objects.filter(pk__in=[c.pk for c in checks]).update(next_run_at=timezone.now() - timedelta(seconds=1))


@pytest.mark.django_db
def test_claim_takes_only_due_enabled_probed_unclaimed_checks(http_target):
    due = http_check(http_target)
    later = http_check(http_target, next_run_at=timezone.now() + timedelta(minutes=5))
    disabled = http_check(http_target, enabled=False)
    ttl = CheckFactory(kind="ttl", ttl=30)
    claim = services.checks_claim_due(lookahead=0)
    assert claim.check_ids == [due.pk]
    assert services.checks_claim_due(lookahead=0).check_ids == []  # held by the first claim
    assert {c.pk for c in (later, disabled, ttl)}.isdisjoint(claim.check_ids)
    due.refresh_from_db()
    assert due.claim_token == claim.token and due.claimed_until > timezone.now()


@pytest.mark.django_db
def test_lookahead_claims_checks_due_within_the_next_tick(http_target):
    soon = http_check(http_target, next_run_at=timezone.now() + timedelta(milliseconds=500))
    assert services.checks_claim_due(lookahead=0).check_ids == []
    assert services.checks_claim_due(lookahead=1.0).check_ids == [soon.pk]


@pytest.mark.django_db
def test_batch_records_results_and_reschedules(http_target):
    check = http_check(http_target, interval=30)
    assert tick() == 1
    check.refresh_from_db()
    assert check.status == "passing" and check.claim_token == "" and check.claimed_until is None
    assert check.last_latency_ms is not None and check.output.endswith(": 200 OK")  # no body unless store_body
    assert 29 <= (check.next_run_at - timezone.now()).total_seconds() <= 30
    assert CheckResult.objects.filter(health_check=check, status="passing").count() == 1
    assert Instance.objects.get().status == "passing"


@pytest.mark.django_db
def test_stored_output_is_cut_to_4_kb(http_target):
    check = http_check(http_target, path="/huge")  # a 10 MB answer: the probe reads 64 KB into its output
    assert tick() == 1
    check.refresh_from_db()
    result = CheckResult.objects.get(health_check=check)
    assert 0 < len(check.output.encode()) <= 4096 and len(result.output.encode()) <= 4096


@pytest.mark.django_db
def test_thresholds_delay_transitions_consul_style(http_target):
    check = http_check(http_target, successes_before_passing=2, failures_before_warning=1, failures_before_critical=3)
    statuses = []
    for code in (200, 200, 500, 500, 500, 200, 200):
        http_target.state["status"] = code
        make_due(check)
        tick()
        check.refresh_from_db()
        statuses.append(check.status)
    assert statuses == ["unknown", "passing", "warning", "warning", "critical", "critical", "passing"]
    changes = [(e.data["old"], e.data["new"]) for e in Event.objects.filter(kind="check.status_changed").order_by("id")]
    assert changes == [("unknown", "passing"), ("passing", "warning"), ("warning", "critical"), ("critical", "passing")]
    # The factory-made instance starts passing, so its first change is to warning.
    instance_changes = [
        (e.data["old"], e.data["new"]) for e in Event.objects.filter(kind="instance.status_changed").order_by("id")
    ]
    assert instance_changes == [("passing", "warning"), ("warning", "critical"), ("critical", "passing")]
    assert CheckResult.objects.filter(health_check=check).count() == 7


@pytest.mark.django_db
def test_instance_status_is_the_worst_check(http_target):
    instance = InstanceFactory(address=http_target.host, port=http_target.port)
    good = http_check(http_target, path="/ok", instance=instance)
    slow = http_check(http_target, path="/status/429", instance=instance)
    tick()
    instance.refresh_from_db()
    assert instance.status == "warning"
    Check.objects.filter(pk=slow.pk).update(path="/status/500")
    make_due(good, slow)
    tick()
    instance.refresh_from_db()
    assert instance.status == "critical" and instance.critical_since is not None


@pytest.mark.django_db
def test_a_batch_whose_claim_was_taken_over_writes_nothing(http_target):
    check = http_check(http_target)
    first = services.checks_claim_due(lookahead=0)
    # The lease lapses (worker lost); the next tick claims the check again under a new token.
    Check.objects.filter(pk=check.pk).update(claimed_until=timezone.now() - timedelta(seconds=1))
    second = services.checks_claim_due(lookahead=0)
    assert second.check_ids == [check.pk] and second.token != first.token
    assert services.checks_run_batch(check_ids=first.check_ids, token=first.token) == 0
    assert services.checks_run_batch(check_ids=second.check_ids, token=second.token) == 1
    assert CheckResult.objects.count() == 1


@pytest.mark.django_db
def test_run_now_probes_immediately_and_refuses_while_claimed(http_target):
    check = http_check(http_target, next_run_at=timezone.now() + timedelta(hours=1))
    updated = services.check_run_now(check=check)
    assert updated.status == "passing" and CheckResult.objects.count() == 1
    services.checks_claim_due(lookahead=0)  # not due: nothing claimed
    Check.objects.filter(pk=check.pk).update(next_run_at=timezone.now())
    services.checks_claim_due(lookahead=0)
    assert services.check_run_now(check=check) is None


@pytest.mark.django_db
def test_disabled_after_claim_is_skipped(http_target):
    check = http_check(http_target)
    claim = services.checks_claim_due(lookahead=0)
    Check.objects.filter(pk=check.pk).update(enabled=False)
    assert services.checks_run_batch(check_ids=claim.check_ids, token=claim.token) == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_racing_dispatchers_on_postgresql_never_double_run_a_slot(http_target):
    assert connection.vendor == "postgresql"
    instance = InstanceFactory(address=http_target.host, port=http_target.port)
    checks = [CheckFactory(instance=instance, kind="http", path="/ok", interval=3600) for _ in range(240)]
    barrier = threading.Barrier(4)
    claimed: list[list[int]] = [[] for _ in range(4)]
    errors: list[BaseException] = []

    def dispatcher(slot: int) -> None:
        try:
            barrier.wait()
            while True:
                claim = services.checks_claim_due(limit=20, lookahead=0)
                if not claim.check_ids:
                    return
                claimed[slot].extend(claim.check_ids)
                services.checks_run_batch(check_ids=claim.check_ids, token=claim.token)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            from django.db import connection as thread_connection

            thread_connection.close()

    threads = [threading.Thread(target=dispatcher, args=(slot,)) for slot in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    all_claimed = [pk for ids in claimed for pk in ids]
    assert sorted(all_claimed) == sorted(c.pk for c in checks)  # each claimed exactly once
    assert sum(1 for ids in claimed if ids) >= 2  # the race really happened
    per_check = CheckResult.objects.values_list("health_check_id", flat=True)
    assert sorted(per_check) == sorted(c.pk for c in checks)  # one result per slot
    assert set(Check.objects.values_list("status", flat=True)) == {"passing"}


def test_claim_batches_split_by_size_and_due_window():
    from registry.services.scheduling import Claim

    start = timezone.now()
    due = [start + timedelta(milliseconds=ms) for ms in (0, 10, 20, 30, 400, 410, 900)]
    claim = Claim("t", [1, 2, 3, 4, 5, 6, 7], due)
    batches = claim.batches(size=3, window=0.25)
    assert [ids for ids, _ in batches] == [[1, 2, 3], [4], [5, 6], [7]]
    assert [first for _, first in batches] == [due[0], due[3], due[4], due[6]]


@pytest.mark.django_db
def test_dispatch_task_queues_lookahead_batches_for_their_due_time(http_target, monkeypatch):
    from registry import tasks

    sent = []
    monkeypatch.setattr(tasks.run_probe_batch, "apply_async", lambda args, **options: sent.append((args, options)))
    now_due = http_check(http_target)
    soon = http_check(http_target, next_run_at=timezone.now() + timedelta(milliseconds=700))
    assert tasks.dispatch_due_checks() == 2
    assert [args[0] for args, _ in sent] == [[now_due.pk], [soon.pk]]
    assert sent[0][1]["eta"] is None and sent[1][1]["eta"] == Check.objects.get(pk=soon.pk).next_run_at
    assert all(options["priority"] == tasks.BATCH_PRIORITY for _, options in sent)
