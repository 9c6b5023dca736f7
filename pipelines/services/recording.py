"""Recording failed runs: the row for a run outcome, and `pipeline.run_failed` (rate-limited per pipeline)."""

from __future__ import annotations

import logging
from typing import Any

from django.core.cache import cache
from django.utils import timezone

from controlplane.events.services import emit
from pipelines.conf import run_failed_event_interval
from pipelines.models import Run, RunStatus
from pipelines.runtime import Outcome

logger = logging.getLogger("pipelines.runs")


def run_row(outcome: Outcome, packet_in: Any, *, mode: str, actor: str, request_id: str) -> Run:
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


def chain_slugs(outcome: Outcome) -> dict[int, str]:
    """Pipeline id -> slug for every link of a chain."""
    found = {outcome.ref.id: outcome.ref.slug}
    for child in outcome.chained:
        found.update(chain_slugs(child))
    return found


def notify_failed(runs: list[Run], *, slugs: dict[int, str], actor: str) -> None:
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
                    "error": _event_error(run),
                    "suppressed_for_seconds": run_failed_event_interval(),
                },
                actor=actor,
            )


def _event_error(run: Run) -> str:
    """The run's error for the event log, unless the run could read config: step errors can quote packet
    values (a failed cast names its input), and `events:read` is not `config:read`."""
    if run.config_namespaces:
        return f"(hidden: the run could read config; see run {run.pk} with config:read)"
    return run.error[:500]
