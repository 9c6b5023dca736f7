"""Celery tasks: thin adapters over `registry.services`. No task per check: beat drives the dispatcher."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from registry import conf, services

# Redis delivers lower numbers first and untagged messages count as 0: batches go behind the dispatcher
# (and every other task), so a long batch queue never delays the next claim.
BATCH_PRIORITY = 6


@shared_task(name="registry.tasks.dispatch_due_checks", ignore_result=True)
def dispatch_due_checks() -> int:
    """Every second: expire lapsed TTLs, claim due checks and queue them as `run_probe_batch` tasks.

    Checks claimed ahead of their due time (lookahead) go out in batches scheduled (eta) for that time.
    """
    services.ttl_checks_expire()
    claim = services.checks_claim_due()
    early = timezone.now() + timedelta(milliseconds=50)
    for ids, first_due in claim.batches(
        size=conf.get("REGISTRY_BATCH_SIZE"), window=conf.get("REGISTRY_BATCH_WINDOW_SECONDS")
    ):
        run_probe_batch.apply_async(
            (ids, claim.token), priority=BATCH_PRIORITY, eta=first_due if first_due > early else None
        )
    return len(claim.check_ids)


@shared_task(name="registry.tasks.run_probe_batch", ignore_result=True)
def run_probe_batch(check_ids: list[int], token: str) -> int:
    """Probe one claimed batch and record the results (rows no longer held by `token` are skipped)."""
    return services.checks_run_batch(check_ids=check_ids, token=token)


@shared_task(name="registry.tasks.reap_critical_instances", ignore_result=True)
def reap_critical_instances() -> int:
    """Deregister instances critical for longer than their `deregister_critical_after`."""
    return services.instances_reap_critical()


@shared_task(name="registry.tasks.prune_check_results", ignore_result=True)
def prune_check_results() -> int:
    """Apply check-result retention (age and count per check)."""
    return services.check_results_prune()
