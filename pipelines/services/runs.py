"""Writes around runs: sync and batch runs (recording failures), async submission and execution, pruning.

The executor and the runtime write nothing; here a sync run touches the database only when something
must be kept: a failed run, a run asked to be recorded, or a delivery to a service.

Every run is authorized first for the config it reads (`pipelines.access`: 403 otherwise; async runs at
submission, carrying the namespaces checked) and runs within one budget per request (`pipelines.budget`).
A request over budget delivers nothing and records one failed run naming the pipeline, step and budget;
sync and batch callers get `RunOverBudget` (422), an async run ends failed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from time import perf_counter
from typing import Any

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from controlplane.observability.context import current_request_id
from pipelines.access import ConfigReader, authorize_run
from pipelines.conf import (
    run_budget,
    run_max_attempts,
    run_pending_requeue_seconds,
    run_retention_days,
    run_stalled_seconds,
)
from pipelines.models import Delivery, Run, RunMode, RunStatus
from pipelines.paths import copy_json
from pipelines.runtime import Outcome, run_packet
from pipelines.selectors import PipelineRef
from pipelines.services.budgets import RunOverBudget, fail_overrun, overrun_of, read_by, refuse_overrun
from pipelines.services.deliveries import deliveries_create
from pipelines.services.recording import chain_slugs, notify_failed, run_row
from pipelines.stats import stats_flush_quietly

logger = logging.getLogger("pipelines.runs")


def _persist(
    items: list[tuple[Outcome, Any]],
    *,
    mode: str,
    record_all: bool,
    actor: str,
    namespaces: Callable[[], list[str]],
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
            rows.append(run_row(outcome, packet_in, mode=mode, actor=actor, request_id=request_id))
        else:
            rows.extend(
                run_row(
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
    if runs:
        read = namespaces()
        for run in runs:
            run.config_namespaces = read
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
            slugs.update(chain_slugs(outcome))
        notify_failed(runs, slugs=slugs, actor=actor)
    return run_ids, delivery_ids


def pipeline_run(
    ref: PipelineRef,
    packet: dict,
    *,
    record: bool = False,
    actor: str = "system",
    reader: ConfigReader | None = None,
) -> dict[str, Any]:
    """Run one prepared packet synchronously; keeps the run when it failed or `record`; queues deliveries.

    `reader` is on whose behalf config is read (the trusted system when None): ConfigReadDenied (403) when
    it may not read what the run reads; RunOverBudget (422) when the run goes over a budget.
    """
    allowed = authorize_run(reader or ConfigReader.system(), ref)
    packet_in = copy_json(packet)
    budget, started = run_budget(), perf_counter()
    outcome = run_packet(ref, packet, copy=False, budget=budget, allowed=allowed)
    overrun = overrun_of([outcome], budget)
    if overrun is not None:
        stats_flush_quietly()
        raise refuse_overrun(
            ref, overrun, packet_in, mode=RunMode.SYNC, actor=actor, budget=budget, started=started, allowed=allowed
        )
    run_ids, delivery_ids = _persist(
        [(outcome, packet_in)], mode=RunMode.SYNC, record_all=record, actor=actor, namespaces=read_by(ref, allowed)
    )
    stats_flush_quietly()
    body = outcome.as_dict()
    if run_ids[0] is not None:
        body["run_id"] = run_ids[0]
    if delivery_ids[0]:
        body["deliveries"] = delivery_ids[0]
    return body


def pipeline_run_batch(
    ref: PipelineRef,
    packets: list[dict],
    *,
    trace: bool = False,
    actor: str = "system",
    reader: ConfigReader | None = None,
) -> dict[str, Any]:
    """Run many prepared packets in one call with one compiled version; one write for all failures.

    One budget for the whole batch (its wall clock and recorded failures; chained runs per packet): the
    first packet over budget ends the batch, which then delivers nothing (RunOverBudget, 422).
    """
    allowed = authorize_run(reader or ConfigReader.system(), ref)
    budget, started = run_budget(), perf_counter()
    items = []
    for packet in packets:
        keep = copy_json(packet)
        outcome = run_packet(ref, packet, version=ref.version, copy=False, budget=budget, allowed=allowed)
        items.append((outcome, keep))
        if outcome.over_budget() is not None:
            break  # the batch fails as a whole: no need to run the rest
    overrun = overrun_of([outcome for outcome, _ in items], budget)
    if overrun is not None:
        stats_flush_quietly()
        raise refuse_overrun(
            ref, overrun, items[-1][1], mode=RunMode.BATCH, actor=actor, budget=budget, started=started, allowed=allowed
        )
    run_ids, delivery_ids = _persist(
        items, mode=RunMode.BATCH, record_all=False, actor=actor, namespaces=read_by(ref, allowed)
    )
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


def pipeline_dry_run(ref: PipelineRef, packet: dict, *, reader: ConfigReader | None = None) -> dict[str, Any]:
    """Run one packet with a before/after trace per step; nothing is recorded, counted or delivered.

    Authorized and budgeted like a run: ConfigReadDenied (403), RunOverBudget (422, no run recorded).
    """
    allowed = authorize_run(reader or ConfigReader.system(), ref)
    budget = run_budget()
    outcome = run_packet(ref, packet, capture=True, count=False, budget=budget, allowed=allowed)
    overrun = overrun_of([outcome], budget)
    if overrun is not None:
        raise RunOverBudget(
            f"The dry run went over the {overrun.budget} budget ({budget.limit_of(overrun.budget)}). {overrun.message}",
            budget=overrun.budget,
            pipeline=overrun.pipeline,
            step=overrun.step,
            limit=budget.limit_of(overrun.budget),
            run_id=None,
        )
    return outcome.as_dict()


@transaction.atomic
def run_submit_async(
    ref: PipelineRef, packets: list[dict], *, actor: str = "system", reader: ConfigReader | None = None
) -> list[Run]:
    """Record pending runs pinned to the current version and queue them for the worker (on commit).

    Authorized here, at submission (ConfigReadDenied, 403): each run carries the namespaces it was
    authorized to read, and the worker lets it read nothing else.
    """
    allowed = authorize_run(reader or ConfigReader.system(), ref)
    # Carried to the worker: the run may read these and nothing else (a later edit of a chained pipeline
    # cannot widen it); also what reading the run back is authorized against.
    read = read_by(ref, allowed)()
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
                config_namespaces=read,
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
        notify_failed(failed, slugs={run.pipeline_id: run.pipeline.slug for run in failed}, actor="system")
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
    allowed = frozenset(run.config_namespaces) if run.config_namespaces is not None else None
    budget, started = run_budget(), perf_counter()
    outcome = run_packet(ref, run.input, version=run.version, copy=True, budget=budget, allowed=allowed)
    overrun = overrun_of([outcome], budget)
    if overrun is not None:
        return fail_overrun(run, overrun, duration_ms=(perf_counter() - started) * 1000)
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
            run_row(failed, failed.entered, mode=RunMode.ASYNC, actor=run.actor, request_id=run.request_id)
            for failed in outcome.failures()
            if failed is not outcome and failed.ref.id
        ]
        for failed_run in chained_failures:
            failed_run.config_namespaces = run.config_namespaces
        if chained_failures:
            Run.objects.bulk_create(chained_failures)
        run.status, run.error = result.status, result.error
        notify_failed([run, *chained_failures], slugs=chain_slugs(outcome), actor=run.actor or "system")
    return result.status


def runs_prune(*, older_than_days: int | None = None) -> int:
    """Delete recorded runs and settled deliveries older than the retention period; returns runs deleted."""
    cutoff = timezone.now() - timedelta(days=older_than_days or run_retention_days())
    Delivery.objects.filter(created_at__lt=cutoff).exclude(status="pending").delete()
    deleted, _ = Run.objects.older_than(cutoff).delete()
    return deleted
