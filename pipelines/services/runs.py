"""Writes around runs: sync and batch runs (recording failures), async submission and execution, pruning.

The executor and the runtime write nothing; here a sync run touches the database only when something
must be kept: a failed run, a run asked to be recorded, or a delivery to a service.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from controlplane.events.services import emit
from controlplane.observability.context import current_request_id
from pipelines.conf import (
    run_failed_event_interval,
    run_max_attempts,
    run_pending_requeue_seconds,
    run_retention_days,
    run_stalled_seconds,
)
from pipelines.models import Delivery, Run, RunMode, RunStatus
from pipelines.paths import copy_json
from pipelines.runtime import Outcome, run_packet
from pipelines.selectors import PipelineRef
from pipelines.services.deliveries import deliveries_create
from pipelines.stats import stats_flush_quietly

logger = logging.getLogger("pipelines.runs")


def _run_row(outcome: Outcome, packet_in: Any, *, mode: str, actor: str, request_id: str) -> Run:
    result = outcome.result
    return Run(
        pipeline_id=outcome.ref.id,
        version=result.pipeline_version,
        mode=mode,
        status=result.status,
        input=packet_in,
        output=result.packet,
        routes=result.routes,
        trace=result.trace,
        chained=[{"pipeline": c.ref.slug, "status": c.status, "error": c.result.error} for c in outcome.chained],
        error="\n".join(result.errors or ([result.error] if result.error else []))[:10_000],
        duration_ms=result.duration_ms,
        request_id=request_id,
        actor=actor[:150],
        finished_at=timezone.now(),
    )


def _persist(
    items: list[tuple[Outcome, Any]], *, mode: str, record_all: bool, actor: str
) -> tuple[list[int | None], list[list[int]]]:
    """Keep what must be kept for a list of (outcome, input): runs and deliveries, in one transaction."""
    request_id = current_request_id() or ""
    runs: list[Run] = []
    run_index: list[int | None] = []
    planned: list[list[tuple[int, str, dict]]] = []
    for outcome, packet_in in items:
        planned.append(outcome.deliveries())
        rows = []
        if record_all:
            rows.append(_run_row(outcome, packet_in, mode=mode, actor=actor, request_id=request_id))
        else:
            rows.extend(
                _run_row(
                    failed,
                    failed.entered if failed.entered is not None else packet_in,
                    mode=mode,
                    actor=actor,
                    request_id=request_id,
                )
                for failed in outcome.failures()
                if failed.ref.id
            )
        run_index.append(len(runs) if rows else None)
        runs.extend(rows)
    if not runs and not any(planned):
        return [None] * len(items), [[] for _ in items]
    with transaction.atomic():
        if runs:
            Run.objects.bulk_create(runs)
        run_ids = [runs[i].pk if i is not None else None for i in run_index]
        flat = [(pid, service, packet, run_ids[n]) for n, plan in enumerate(planned) for pid, service, packet in plan]
        created: list[Delivery] = deliveries_create(flat, request_id=request_id) if flat else []
        delivery_ids: list[list[int]] = []
        cursor = 0
        for plan in planned:
            delivery_ids.append([d.pk for d in created[cursor : cursor + len(plan)]])
            cursor += len(plan)
        slugs: dict[int, str] = {}
        for outcome, _ in items:
            slugs.update(_slugs(outcome))
        _notify_failed(runs, slugs=slugs, actor=actor)
    return run_ids, delivery_ids


def _slugs(outcome: Outcome) -> dict[int, str]:
    """Pipeline id -> slug for every link of a chain."""
    found = {outcome.ref.id: outcome.ref.slug}
    for child in outcome.chained:
        found.update(_slugs(child))
    return found


def _notify_failed(runs: list[Run], *, slugs: dict[int, str], actor: str) -> None:
    """`pipeline.run_failed`, at most once per pipeline per interval so a failing flood stays one event."""
    seen: set[int] = set()
    for run in runs:
        if run.status != RunStatus.FAILED or run.pipeline_id in seen:
            continue
        seen.add(run.pipeline_id)
        try:
            first = cache.add(f"pipelines:run_failed:{run.pipeline_id}", 1, timeout=run_failed_event_interval())
        except Exception:  # noqa: BLE001 - a cache outage must not turn a failed packet into a 500
            logger.warning("Cache unavailable for the run_failed rate limit", exc_info=True)
            first = False
        if first:
            emit(
                "pipeline.run_failed",
                subject=slugs.get(run.pipeline_id, str(run.pipeline_id)),
                data={
                    "run_id": run.pk,
                    "version": run.version,
                    "error": run.error[:500],
                    "suppressed_for_seconds": run_failed_event_interval(),
                },
                actor=actor,
            )


def pipeline_run(ref: PipelineRef, packet: dict, *, record: bool = False, actor: str = "system") -> dict[str, Any]:
    """Run one prepared packet synchronously; keeps the run when it failed or `record`; queues deliveries."""
    packet_in = copy_json(packet)
    outcome = run_packet(ref, packet, copy=False)
    run_ids, delivery_ids = _persist([(outcome, packet_in)], mode=RunMode.SYNC, record_all=record, actor=actor)
    stats_flush_quietly()
    body = outcome.as_dict()
    if run_ids[0] is not None:
        body["run_id"] = run_ids[0]
    if delivery_ids[0]:
        body["deliveries"] = delivery_ids[0]
    return body


def pipeline_run_batch(
    ref: PipelineRef, packets: list[dict], *, trace: bool = False, actor: str = "system"
) -> dict[str, Any]:
    """Run many prepared packets in one call with one compiled version; one write for all failures."""
    items = []
    for packet in packets:
        keep = copy_json(packet)
        outcome = run_packet(ref, packet, version=ref.version, copy=False)
        items.append((outcome, keep))
    run_ids, delivery_ids = _persist(items, mode=RunMode.BATCH, record_all=False, actor=actor)
    stats_flush_quietly()
    results = []
    summary = {"succeeded": 0, "failed": 0, "dropped": 0}
    for (outcome, _), run_id, deliveries in zip(items, run_ids, delivery_ids, strict=True):
        body = outcome.as_dict(trace=trace)
        if run_id is not None:
            body["run_id"] = run_id
        if deliveries:
            body["deliveries"] = deliveries
        summary[outcome.status] += 1
        results.append(body)
    return {"pipeline_version": ref.version, "count": len(results), "summary": summary, "results": results}


@transaction.atomic
def run_submit_async(ref: PipelineRef, packets: list[dict], *, actor: str = "system") -> list[Run]:
    """Record pending runs pinned to the current version and queue them for the worker (on commit)."""
    request_id = current_request_id() or ""
    runs = Run.objects.bulk_create(
        [
            Run(
                pipeline_id=ref.id,
                version=ref.version,
                mode=RunMode.ASYNC,
                status=RunStatus.PENDING,
                queued_at=timezone.now(),
                input=packet,
                request_id=request_id,
                actor=actor[:150],
            )
            for packet in packets
        ]
    )
    ids = [run.pk for run in runs]
    transaction.on_commit(lambda: _queue(ids))
    return runs


def _queue(ids: list[int]) -> None:
    from pipelines.tasks import run_execute_task

    for start in range(0, len(ids), 100):
        run_execute_task.delay(ids[start : start + 100])


def runs_recover() -> dict[str, int]:
    """Queue again the async runs a crash left behind; fail those that keep losing their worker.

    A run `running` past `PIPELINE_RUN_STALLED_SECONDS` was claimed by a worker that died: it goes back
    to `pending` (steps are pure and deliveries are written with the result, so a second execution
    repeats nothing), unless it has been claimed `PIPELINE_RUN_MAX_ATTEMPTS` times, when it is failed
    with the reason. Then every `pending` run whose message went out more than
    `PIPELINE_RUN_PENDING_REQUEUE_SECONDS` ago (a lost message, or one of those just reset) is queued once
    more and stamped, so a long backlog is not flooded with copies: at most one per run per period. A copy
    is harmless: the claim is a conditional update.
    """
    now = timezone.now()
    stalled = Run.objects.filter(
        mode=RunMode.ASYNC, status=RunStatus.RUNNING, started_at__lt=now - timedelta(seconds=run_stalled_seconds())
    )
    failed: list[Run] = []
    with transaction.atomic():
        for run in stalled.filter(attempts__gte=run_max_attempts()).select_related("pipeline"):
            error = f"The worker running it stopped {run.attempts} times; not retried."
            if Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
                status=RunStatus.FAILED, error=error, finished_at=now
            ):
                run.status, run.error = RunStatus.FAILED, error
                failed.append(run)
        _notify_failed(failed, slugs={run.pipeline_id: run.pipeline.slug for run in failed}, actor="system")
    reset = stalled.filter(attempts__lt=run_max_attempts()).update(status=RunStatus.PENDING, queued_at=None)
    overdue = now - timedelta(seconds=run_pending_requeue_seconds())
    ids = list(
        Run.objects.filter(mode=RunMode.ASYNC, status=RunStatus.PENDING)
        .filter(Q(queued_at__isnull=True) | Q(queued_at__lt=overdue))
        .values_list("pk", flat=True)[:10_000]
    )
    if ids:
        Run.objects.filter(pk__in=ids).update(queued_at=now)
        logger.warning("Queued %d async runs again (%d had lost their worker)", len(ids), reset)
        _queue(ids)
    return {"stalled": reset, "queued": len(ids), "failed": len(failed)}


def run_execute(*, run_id: int) -> str | None:
    """Execute a pending async run with the version it was submitted at; returns its status."""
    # A conditional UPDATE claims the run, so a redelivered task never executes it twice.
    claimed = Run.objects.filter(pk=run_id, status=RunStatus.PENDING).update(
        status=RunStatus.RUNNING, started_at=timezone.now(), attempts=F("attempts") + 1
    )
    if not claimed:
        return None
    run = Run.objects.select_related("pipeline").get(pk=run_id)
    ref = PipelineRef(id=run.pipeline_id, slug=run.pipeline.slug, version=run.version, enabled=run.pipeline.enabled)
    outcome = run_packet(ref, run.input, version=run.version, copy=True)
    result = outcome.result
    with transaction.atomic():
        updated = Run.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(
            status=result.status,
            output=result.packet,
            routes=result.routes,
            trace=result.trace,
            chained=[{"pipeline": c.ref.slug, "status": c.status, "error": c.result.error} for c in outcome.chained],
            error="\n".join(result.errors or ([result.error] if result.error else []))[:10_000],
            duration_ms=result.duration_ms,
            finished_at=timezone.now(),
        )
        if not updated:
            return None
        plan = [(pid, service, packet, run_id) for pid, service, packet in outcome.deliveries()]
        if plan:
            deliveries_create(plan, request_id=run.request_id)
        chained_failures = [
            _run_row(failed, failed.entered, mode=RunMode.ASYNC, actor=run.actor, request_id=run.request_id)
            for failed in outcome.failures()
            if failed is not outcome and failed.ref.id
        ]
        if chained_failures:
            Run.objects.bulk_create(chained_failures)
        run.status, run.error = result.status, result.error
        _notify_failed([run, *chained_failures], slugs=_slugs(outcome), actor=run.actor or "system")
    return result.status


def runs_prune(*, older_than_days: int | None = None) -> int:
    """Delete recorded runs and settled deliveries older than the retention period; returns runs deleted."""
    cutoff = timezone.now() - timedelta(days=older_than_days or run_retention_days())
    Delivery.objects.filter(created_at__lt=cutoff).exclude(status="pending").delete()
    deleted, _ = Run.objects.older_than(cutoff).delete()
    return deleted
