"""Writes to pipeline definitions: create, update (with steps), enable/disable, delete.

Every change validates the whole definition first (one path for admin, API and demo data), saves the
pipeline and its steps, bumps `version`, stores an immutable `PipelineVersion` snapshot and emits
`pipeline.changed`, all in one transaction.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F

from controlplane.events.services import emit
from pipelines.access import ConfigReader, definition_read_errors
from pipelines.conf import max_steps
from pipelines.executor import validate_steps
from pipelines.models import Pipeline, PipelineVersion, Step

PIPELINE_FIELDS = ("slug", "name", "description", "enabled", "error_policy")
STEP_FIELDS = ("name", "kind", "priority", "condition", "config", "on_error", "enabled")
STEP_DEFAULTS: dict[str, Any] = {"priority": 100, "condition": "", "config": {}, "on_error": "fail", "enabled": True}


def normalize_steps(steps: list[dict]) -> list[dict]:
    """Fill step defaults (`condition` null -> ""), keeping unknown keys out."""
    result = []
    for step in steps:
        if not isinstance(step, dict):
            result.append(step)
            continue
        item = {name: step.get(name, STEP_DEFAULTS.get(name)) for name in STEP_FIELDS}
        if item["condition"] is None:
            item["condition"] = ""
        if "id" in step:
            item["id"] = step["id"]
        result.append(item)
    return result


def definition_errors(
    pipeline: Pipeline, steps: list[dict] | None, *, reader: ConfigReader | None = None
) -> dict[str, list[str]]:
    """Every problem with a pipeline's fields and (when given) its steps; empty = valid.

    `reader` (the trusted system when None) must be allowed to read every config namespace the steps
    read, directly or through the pipelines they route into (`pipelines.access`).
    """
    errors: dict[str, list[str]] = {}
    try:
        pipeline.full_clean(exclude=["version"])
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if steps is not None:
        errors.update(validate_steps(steps, max_steps=max_steps()))
        if reader is not None:
            for key, messages in definition_read_errors(reader, steps).items():
                errors.setdefault(key, []).extend(messages)
    return errors


def snapshot(pipeline: Pipeline, steps: list[Step]) -> dict[str, Any]:
    """The plain definition the executor compiles (steps in creation order; it sorts by priority)."""
    return {
        "id": pipeline.pk,
        "slug": pipeline.slug,
        "version": pipeline.version,
        "error_policy": pipeline.error_policy,
        "steps": [
            {
                "name": s.name,
                "kind": s.kind,
                "priority": s.priority,
                "condition": s.condition,
                "config": s.config,
                "on_error": s.on_error,
                "enabled": s.enabled,
            }
            for s in sorted(steps, key=lambda s: (s.created_at, s.pk))
        ],
    }


def _save_steps(pipeline: Pipeline, steps: list[dict]) -> list[Step]:
    """Make the pipeline's steps exactly `steps`: matched by `id` (admin) or else by name, kept in order."""
    existing = {step.pk: step for step in pipeline.steps.all()}
    by_name = {step.name: step for step in existing.values()}
    kept: list[Step] = []
    for item in steps:
        step = existing.get(item.get("id")) if item.get("id") else None
        step = step or by_name.get(item["name"])
        if step is not None and step.pk in {k.pk for k in kept}:
            step = None
        step = step or Step(pipeline=pipeline)
        for name in STEP_FIELDS:
            setattr(step, name, item[name])
        kept.append(step)
    kept_ids = {step.pk for step in kept if step.pk}
    pipeline.steps.exclude(pk__in=kept_ids).delete()
    # Renames could collide with the unique (pipeline, name) constraint mid-way: park names first.
    for step in kept:
        if step.pk:
            Step.objects.filter(pk=step.pk).update(name=f"~{step.pk}")
    for step in kept:
        step.full_clean(exclude=["pipeline"], validate_unique=False, validate_constraints=False)
        step.save()
    return kept


def _commit_version(pipeline: Pipeline, *, actor: str, action: str, changed: list[str]) -> None:
    steps = list(pipeline.steps.all())
    definition = snapshot(pipeline, steps)
    PipelineVersion.objects.create(
        pipeline=pipeline, version=pipeline.version, definition=definition, actor=actor[:150]
    )
    emit(
        "pipeline.changed",
        subject=pipeline.slug,
        data={"action": action, "version": pipeline.version, "fields": changed, "steps": len(steps)},
        actor=actor,
    )


@transaction.atomic
def pipeline_create(
    *,
    slug: str,
    name: str,
    description: str = "",
    error_policy: str = "stop",
    enabled: bool = True,
    steps: list[dict] | None = None,
    actor: str = "system",
    reader: ConfigReader | None = None,
) -> Pipeline:
    """Create a pipeline with its steps (version 1); raises ValidationError naming each bad step.

    `reader`: whose config reads the steps may make (see `definition_errors`).
    """
    steps = normalize_steps(steps or [])
    pipeline = Pipeline(slug=slug, name=name, description=description, error_policy=error_policy, enabled=enabled)
    errors = definition_errors(pipeline, steps, reader=reader)
    if errors:
        raise ValidationError(errors)
    pipeline.save()
    _save_steps(pipeline, steps)
    _commit_version(pipeline, actor=actor, action="created", changed=list(PIPELINE_FIELDS) + ["steps"])
    return pipeline


@transaction.atomic
def pipeline_update(
    pipeline: Pipeline,
    *,
    actor: str = "system",
    steps: list[dict] | None = None,
    reader: ConfigReader | None = None,
    **fields: Any,
) -> Pipeline:
    """Change fields and/or replace the steps; bumps the version; nothing is saved when anything is invalid.

    `reader`: whose config reads new steps may make (see `definition_errors`).
    """
    unknown = sorted(set(fields) - set(PIPELINE_FIELDS))
    if unknown:
        raise ValidationError({name: ["Unknown field."] for name in unknown})
    locked = Pipeline.objects.select_for_update().get(pk=pipeline.pk)
    for name, value in fields.items():
        setattr(locked, name, value)
    normalized = normalize_steps(steps) if steps is not None else None
    errors = definition_errors(locked, normalized, reader=reader)
    if errors:
        raise ValidationError(errors)
    locked.version = F("version") + 1
    locked.save()
    locked.refresh_from_db()
    if normalized is not None:
        _save_steps(locked, normalized)
    changed = sorted(fields) + (["steps"] if steps is not None else [])
    _commit_version(locked, actor=actor, action="updated", changed=changed)
    pipeline.__dict__.update({k: v for k, v in locked.__dict__.items() if not k.startswith("_")})
    return locked


def pipeline_set_enabled(pipeline: Pipeline, *, enabled: bool, actor: str = "system") -> Pipeline:
    """Enable or disable a pipeline (a disabled pipeline answers runs with 409)."""
    return pipeline_update(pipeline, enabled=enabled, actor=actor)


@transaction.atomic
def pipeline_delete(pipeline: Pipeline, *, actor: str = "system") -> None:
    """Delete a pipeline with its steps, versions, runs, deliveries and stats (admin and API alike).

    Emits `pipeline.changed`; on commit this process forgets its compiled versions and unflushed counters
    (other processes never run it again: runs look the pipeline up first, and its rows are gone).
    """
    from pipelines.executor import compiled_pipelines
    from pipelines.stats import accumulator

    pipeline_id, slug, version = pipeline.pk, pipeline.slug, pipeline.version
    pipeline.delete()
    emit("pipeline.changed", subject=slug, data={"action": "deleted", "version": version}, actor=actor)

    def forget() -> None:
        compiled_pipelines.forget(pipeline_id)
        accumulator.discard(pipeline_id)

    transaction.on_commit(forget)
