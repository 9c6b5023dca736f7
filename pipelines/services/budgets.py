"""Requests over a run budget (`pipelines.budget`): find where, record the one failed run, answer 422.

Over budget the whole request delivers nothing: the caller of `overrun_of` skips persisting deliveries and
records a single failed run (input kept, no output) naming the pipeline, the step and the budget.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from django.db import transaction
from django.utils import timezone
from rest_framework import exceptions

from controlplane.observability.context import current_request_id
from pipelines.access import namespaces_read
from pipelines.budget import RECORDED_FAILURES, Budget
from pipelines.models import Run, RunStatus
from pipelines.runtime import Outcome
from pipelines.selectors import PipelineRef
from pipelines.services.recording import notify_failed


class RunOverBudget(exceptions.APIException):
    """422: the request went over a run budget; nothing was delivered, one failed run was recorded."""

    status_code = 422
    default_detail = "The run went over a budget."
    default_code = "budget_exceeded"

    def __init__(self, detail: str, *, budget: str, pipeline: str, step: str | None, limit: str, run_id: int | None):
        super().__init__(detail)
        self.budget = budget
        self.problem_extra = {"budget": budget, "pipeline": pipeline, "step": step, "limit": limit, "run_id": run_id}


@dataclass(frozen=True)
class Overrun:
    """Where a request went over budget, in words for the failed run and the 422."""

    budget: str
    pipeline: str
    step: str | None
    message: str


def overrun_of(outcomes: list[Outcome], budget: Budget) -> Overrun | None:
    """The first budget a request's outcomes went over, counting the failures it would record."""
    for outcome in outcomes:
        over = outcome.over_budget()
        if over is not None:
            result = over.result
            step = result.log[-1][0] if result.log else None  # the step the run stopped at
            return Overrun(result.budget, over.ref.slug, step, f"pipeline {over.ref.slug!r}: {result.error}")
    failures = sum(1 for outcome in outcomes for failed in outcome.failures() if failed.ref.id)
    if failures > budget.max_recorded_failures:
        root = outcomes[0].ref.slug
        message = (
            f"the request would record {failures} failed runs; the recorded_failures budget is "
            f"{budget.max_recorded_failures}"
        )
        return Overrun(RECORDED_FAILURES, root, None, f"pipeline {root!r}: {message}")
    return None


def read_by(ref: PipelineRef, allowed: frozenset[str] | None) -> Callable[[], list[str]]:
    """The namespaces a request's runs may have read, kept on the rows it records so that reading a run back
    is authorized like the run was (computed only when a row is written)."""
    return lambda: sorted(allowed if allowed is not None else namespaces_read(ref))


def _record_overrun(
    ref: PipelineRef,
    overrun: Overrun,
    packet_in: Any,
    *,
    mode: str,
    actor: str,
    duration_ms: float,
    namespaces: Callable[[], list[str]],
) -> Run:
    """The one failed run a request over budget leaves (no output, no deliveries), with `pipeline.run_failed`."""
    request_id = current_request_id() or ""
    with transaction.atomic():
        run = Run.objects.create(
            pipeline_id=ref.id,
            version=ref.version,
            mode=mode,
            status=RunStatus.FAILED,
            input=packet_in,
            output=None,
            error=f"over budget ({overrun.budget}): {overrun.message}"[:10_000],
            duration_ms=duration_ms,
            request_id=request_id,
            actor=actor[:150],
            config_namespaces=namespaces(),
            finished_at=timezone.now(),
        )
        notify_failed([run], slugs={ref.id: ref.slug}, actor=actor)
    return run


def refuse_overrun(
    ref: PipelineRef,
    overrun: Overrun,
    packet_in: Any,
    *,
    mode: str,
    actor: str,
    budget: Budget,
    started: float,
    allowed: frozenset[str] | None,
) -> RunOverBudget:
    run = _record_overrun(
        ref,
        overrun,
        packet_in,
        mode=mode,
        actor=actor,
        duration_ms=(perf_counter() - started) * 1000,
        namespaces=read_by(ref, allowed),
    )
    return RunOverBudget(
        f"The run went over the {overrun.budget} budget ({budget.limit_of(overrun.budget)}); nothing was "
        f"delivered. {overrun.message}",
        budget=overrun.budget,
        pipeline=overrun.pipeline,
        step=overrun.step,
        limit=budget.limit_of(overrun.budget),
        run_id=run.pk,
    )


def fail_overrun(run: Run, overrun: Overrun, *, duration_ms: float) -> str | None:
    """An async run over budget: failed with the reason, no output, no deliveries, `pipeline.run_failed`."""
    error = f"over budget ({overrun.budget}): {overrun.message}"[:10_000]
    with transaction.atomic():
        updated = Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
            status=RunStatus.FAILED, output=None, error=error, duration_ms=duration_ms, finished_at=timezone.now()
        )
        if not updated:
            return None
        run.status, run.error = RunStatus.FAILED, error
        notify_failed([run], slugs={run.pipeline_id: run.pipeline.slug}, actor=run.actor or "system")
    return RunStatus.FAILED
