"""Every write in pipelines, by area: definitions, runs, deliveries."""

from pipelines.services.budgets import RunOverBudget
from pipelines.services.definitions import (
    pipeline_create,
    pipeline_delete,
    pipeline_set_enabled,
    pipeline_update,
)
from pipelines.services.deliveries import deliveries_create, delivery_attempt
from pipelines.services.runs import (
    pipeline_dry_run,
    pipeline_run,
    pipeline_run_batch,
    run_execute,
    run_submit_async,
    runs_prune,
    runs_recover,
)

__all__ = [
    "RunOverBudget",
    "deliveries_create",
    "delivery_attempt",
    "pipeline_create",
    "pipeline_delete",
    "pipeline_dry_run",
    "pipeline_run",
    "pipeline_run_batch",
    "pipeline_set_enabled",
    "pipeline_update",
    "run_execute",
    "run_submit_async",
    "runs_prune",
    "runs_recover",
]
