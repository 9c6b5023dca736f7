"""Step kinds, one module each, keyed by a plain dict. Adding a kind = one module + one entry here."""

from __future__ import annotations

from pipelines.steps.base import DropPacket, RunState, StepError, StepKind
from pipelines.steps.enrich import EnrichStep
from pipelines.steps.filter import FilterStep
from pipelines.steps.route import RouteStep
from pipelines.steps.transform import TransformStep
from pipelines.steps.validate import ValidateStep

STEP_KINDS: dict[str, type[StepKind]] = {
    "transform": TransformStep,
    "validate": ValidateStep,
    "route": RouteStep,
    "filter": FilterStep,
    "enrich": EnrichStep,
}

__all__ = ["STEP_KINDS", "DropPacket", "RunState", "StepError", "StepKind"]
