"""Reads for pipelines: definitions, the compiled pipeline for a run, runs, deliveries and metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet
from django.http import Http404

from pipelines.executor import CompiledPipeline, compiled_pipelines
from pipelines.models import Delivery, Pipeline, PipelineVersion, Run, Step, StepStats


@dataclass(frozen=True)
class PipelineRef:
    """The little a run needs to know about a pipeline before compiling: id, slug, version, enabled."""

    id: int
    slug: str
    version: int
    enabled: bool


def pipeline_list() -> QuerySet[Pipeline]:
    """Pipelines with their steps, by slug."""
    return Pipeline.objects.prefetch_related("steps").order_by("slug")


def pipeline_get(slug: str) -> Pipeline:
    """The pipeline `slug` or 404."""
    pipeline = Pipeline.objects.prefetch_related("steps").filter(slug=slug).first()
    if pipeline is None:
        raise Http404(f"No pipeline {slug!r}.")
    return pipeline


def pipeline_ref(slug: str) -> PipelineRef | None:
    """One indexed read: what a run needs to pick the compiled version."""
    row = Pipeline.objects.filter(slug=slug).values_list("id", "slug", "version", "enabled").first()
    return PipelineRef(*row) if row else None


def pipeline_ref_by_id(pipeline_id: int) -> PipelineRef | None:
    row = Pipeline.objects.filter(pk=pipeline_id).values_list("id", "slug", "version", "enabled").first()
    return PipelineRef(*row) if row else None


def pipeline_definition(pipeline_id: int, version: int) -> dict[str, Any]:
    """The immutable definition of one pipeline version."""
    return PipelineVersion.objects.values_list("definition", flat=True).get(pipeline_id=pipeline_id, version=version)


def compiled_pipeline(pipeline_id: int, version: int) -> CompiledPipeline:
    """The compiled pipeline for (id, version), compiled on first use in this process."""
    return compiled_pipelines.get((pipeline_id, version), lambda: pipeline_definition(pipeline_id, version))


def steps_ordered(pipeline: Pipeline) -> list[Step]:
    """Steps in run order: priority, then creation."""
    return sorted(pipeline.steps.all(), key=lambda s: (s.priority, s.created_at, s.pk))


def run_get(run_id: int) -> Run:
    run = Run.objects.select_related("pipeline").filter(pk=run_id).first()
    if run is None:
        raise Http404(f"No run {run_id}.")
    return run


def runs_recent(pipeline: Pipeline, *, limit: int = 20) -> QuerySet[Run]:
    """The pipeline's latest recorded runs."""
    return Run.objects.for_pipeline(pipeline.pk).order_by("-id")[:limit]


def deliveries_recent(pipeline: Pipeline, *, limit: int = 20) -> QuerySet[Delivery]:
    return Delivery.objects.filter(pipeline=pipeline).order_by("-id")[:limit]


def deliveries_due(limit: int = 500) -> list[int]:
    """Ids of deliveries whose retry is due (for the beat sweep)."""
    return list(Delivery.objects.due().order_by("next_attempt_at").values_list("pk", flat=True)[:limit])


def pipeline_metrics(pipeline: Pipeline) -> dict[str, Any]:
    """Counters and latency for the pipeline and each of its current steps (flushed totals + this process)."""
    from pipelines.stats import accumulator, summarize

    rows = {row.step: row for row in StepStats.objects.filter(pipeline=pipeline)}
    pending = accumulator.pending(pipeline.pk)

    def merged(step: str) -> dict[str, Any]:
        row, tally = rows.get(step), pending.get(step)
        values = {
            name: (getattr(row, name) if row else 0) + (getattr(tally, name) if tally else 0)
            for name in ("received", "sent", "dropped", "errors", "skipped", "latency_count")
        }
        latency_sum = (row.latency_sum_ms if row else 0.0) + (tally.latency_sum_ms if tally else 0.0)
        stored = list(row.latency_buckets) if row and row.latency_buckets else []
        live = tally.buckets if tally else []
        width = max(len(stored), len(live))
        buckets = [(stored[i] if i < len(stored) else 0) + (live[i] if i < len(live) else 0) for i in range(width)]
        return summarize(latency_sum_ms=latency_sum, buckets=buckets, **values)

    steps = [
        {"step": step.name, "kind": step.kind, "enabled": step.enabled, **merged(step.name)}
        for step in steps_ordered(pipeline)
    ]
    return {"pipeline": pipeline.slug, "version": pipeline.version, "totals": merged(""), "steps": steps}
