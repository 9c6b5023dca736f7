"""Celery tasks: thin adapters over `registry.services`. No task per check: beat drives the dispatcher."""

from __future__ import annotations

from celery import shared_task

from registry import conf, services


@shared_task(name="registry.tasks.dispatch_due_checks", ignore_result=True)
def dispatch_due_checks() -> int:
    """Every second: expire lapsed TTLs, claim due checks and queue them as `run_probe_batch` tasks."""
    services.ttl_checks_expire()
    claim = services.checks_claim_due()
    size = conf.get("REGISTRY_BATCH_SIZE")
    for start in range(0, len(claim.check_ids), size):
        run_probe_batch.delay(claim.check_ids[start : start + size], claim.token)
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
