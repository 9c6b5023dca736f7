"""Admin: pipelines with their steps inline (ordered by priority), enable/disable, dry run, runs and metrics.

Saving goes through the same services as the API: the inline formset validates the steps with the
executor's `validate_steps` (errors land on the step's own fields), then `save_related` hands the whole
definition to `pipeline_create`/`pipeline_update`, which bumps the version and emits `pipeline.changed`.
Deleting (the change page's delete and the "delete selected" action) goes through `pipeline_delete`.
Config reads act as the logged-in user (`ConfigReader.from_user`): steps that enrich from config, and dry
runs that would read it, need the config store's view permission.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse

from controlplane.jsonbounds import loads_bounded
from pipelines import selectors, services
from pipelines.access import ConfigReadDenied, ConfigReader, definition_read_errors
from pipelines.conf import max_packet_bytes
from pipelines.executor import PacketError, prepare_packet, validate_steps
from pipelines.models import Delivery, Pipeline, Run, Step, StepStats
from pipelines.services.definitions import PIPELINE_FIELDS, STEP_FIELDS, normalize_steps

SAMPLE_PACKET = {"payload": {"amount": 10, "currency": "eur"}, "metadata": {}, "tags": []}


def _actor(request: HttpRequest) -> str:
    return f"user:{request.user.get_username()}"


class StepInlineFormSet(BaseInlineFormSet):
    """Validates the steps together (kinds, configs, expressions, duplicate names) before anything is saved.

    `reader` (set per request by `StepInline.get_formset`) must be allowed to read the config they read.
    """

    reader: ConfigReader | None = None

    def live_forms(self) -> list[forms.ModelForm]:
        return [
            form
            for form in self.forms
            if hasattr(form, "cleaned_data")
            and form.cleaned_data
            and not form.cleaned_data.get("DELETE")
            and (form.instance.pk or form.has_changed())
        ]

    def steps(self) -> list[dict[str, Any]]:
        items = []
        for form in self.live_forms():
            item = {name: form.cleaned_data.get(name) for name in STEP_FIELDS}
            if form.instance.pk:
                item["id"] = form.instance.pk
            items.append(item)
        return normalize_steps(items)

    def clean(self) -> None:
        super().clean()
        live = self.live_forms()
        steps = self.steps()
        problems = validate_steps(steps)
        if self.reader is not None:
            for key, messages in definition_read_errors(self.reader, steps).items():
                problems.setdefault(key, []).extend(messages)
        for key, errors in problems.items():
            parts = key.split(".")
            form = live[int(parts[1])] if len(parts) > 1 and parts[1].isdigit() else None
            field = parts[2] if len(parts) > 2 else None
            for message in errors:
                if form is None:
                    raise ValidationError(message)
                form.add_error(field if field in form.fields else None, message)


class StepInline(admin.TabularInline):
    model = Step
    formset = StepInlineFormSet
    extra = 1
    fields = ("priority", "name", "kind", "enabled", "condition", "config", "on_error")
    ordering = ("priority", "id")

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any):  # type: ignore[no-untyped-def]
        # A fresh class per request: the reader is this request's user.
        formset = super().get_formset(request, obj, **kwargs)
        formset.reader = ConfigReader.from_user(request.user)
        return formset

    def formfield_for_dbfield(self, db_field, request, **kwargs):  # type: ignore[no-untyped-def]
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "kind":
            from pipelines.steps import STEP_KINDS

            return forms.ChoiceField(choices=[("", "---------")] + [(k, k) for k in STEP_KINDS], required=True)
        if db_field.name == "condition" and field is not None:
            field.widget = forms.Textarea(attrs={"rows": 2, "cols": 30})
        if db_field.name == "config" and field is not None:
            field.widget = forms.Textarea(attrs={"rows": 6, "cols": 60, "style": "font-family: monospace"})
        if db_field.name == "priority" and field is not None:
            field.widget.attrs.update({"style": "width: 5em", "class": "pipeline-step-priority"})
        return field


class DryRunForm(forms.Form):
    packet = forms.CharField(widget=forms.Textarea(attrs={"rows": 10, "cols": 90, "style": "font-family: monospace"}))

    def clean_packet(self) -> dict:
        text = self.cleaned_data["packet"]
        if len(text.encode()) > max_packet_bytes():
            raise ValidationError(f"The packet is larger than {max_packet_bytes()} bytes.")
        try:
            return prepare_packet(loads_bounded(text))
        except PacketError as exc:
            raise ValidationError([f"{k}: {' '.join(v)}" for k, v in exc.errors.items()]) from None
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


@admin.register(Pipeline)
class PipelineAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "enabled", "version", "error_policy", "step_count", "updated_at")
    list_filter = ("enabled", "error_policy")
    search_fields = ("slug", "name", "description")
    readonly_fields = ("version", "created_at", "updated_at")
    fields = ("slug", "name", "description", "enabled", "error_policy", "version", "created_at", "updated_at")
    inlines = [StepInline]
    actions = ["enable_pipelines", "disable_pipelines"]
    change_form_template = "admin/pipelines/pipeline/change_form.html"

    @admin.display(description="steps")
    def step_count(self, pipeline: Pipeline) -> int:
        return pipeline.steps.count()

    def save_model(self, request: HttpRequest, obj: Pipeline, form: forms.ModelForm, change: bool) -> None:
        """Saved together with its steps in `save_related`, through the services."""

    def save_related(self, request: HttpRequest, form: forms.ModelForm, formsets: list, change: bool) -> None:
        steps: list[dict[str, Any]] = []
        for formset in formsets:
            if isinstance(formset, StepInlineFormSet):
                steps = formset.steps()
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        fields = {name: form.cleaned_data[name] for name in PIPELINE_FIELDS if name in form.cleaned_data}
        reader = ConfigReader.from_user(request.user)
        if change:
            saved = services.pipeline_update(
                Pipeline.objects.get(pk=form.instance.pk), steps=steps, actor=_actor(request), reader=reader, **fields
            )
        else:
            saved = services.pipeline_create(**fields, steps=steps, actor=_actor(request), reader=reader)
        form.instance.pk, form.instance.version = saved.pk, saved.version

    def delete_model(self, request: HttpRequest, obj: Pipeline) -> None:
        """The change page's delete, through the service (event, caches)."""
        services.pipeline_delete(obj, actor=_actor(request))

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        """The "delete selected" action, one service call per pipeline."""
        for pipeline in queryset:
            services.pipeline_delete(pipeline, actor=_actor(request))

    @admin.action(description="Enable selected pipelines")
    def enable_pipelines(self, request: HttpRequest, queryset: Any) -> None:
        for pipeline in queryset:
            services.pipeline_set_enabled(pipeline, enabled=True, actor=_actor(request))
        self.message_user(request, f"Enabled {queryset.count()} pipeline(s).", messages.SUCCESS)

    @admin.action(description="Disable selected pipelines")
    def disable_pipelines(self, request: HttpRequest, queryset: Any) -> None:
        for pipeline in queryset:
            services.pipeline_set_enabled(pipeline, enabled=False, actor=_actor(request))
        self.message_user(request, f"Disabled {queryset.count()} pipeline(s).", messages.SUCCESS)

    def get_urls(self):  # type: ignore[no-untyped-def]
        extra = [
            path(
                "<path:object_id>/dry-run/",
                self.admin_site.admin_view(self.dry_run_view),
                name="pipelines_pipeline_dry_run",
            )
        ]
        return extra + super().get_urls()

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        extra_context = dict(extra_context or {})
        pipeline = Pipeline.objects.filter(pk=object_id).first() if object_id.isdigit() else None
        if pipeline is not None:
            recent_runs = list(selectors.runs_recent(pipeline, limit=10))
            if not ConfigReader.from_user(request.user).reads_all:
                for run in recent_runs:
                    run.error = "(hidden: needs the config view permission)" if run.error else ""
            extra_context.update(
                dry_run_form=DryRunForm(initial={"packet": json.dumps(SAMPLE_PACKET, indent=2)}),
                dry_run_url=reverse("admin:pipelines_pipeline_dry_run", args=[pipeline.pk]),
                recent_runs=recent_runs,
                recent_deliveries=list(selectors.deliveries_recent(pipeline, limit=10)),
                step_metrics=selectors.pipeline_metrics(pipeline),
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def dry_run_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Paste a packet, see output, routes and each step's before/after; nothing is kept or delivered."""
        pipeline = get_object_or_404(Pipeline, pk=object_id)
        if not self.has_view_permission(request, pipeline):
            raise PermissionDenied
        form = DryRunForm(request.POST or None, initial={"packet": json.dumps(SAMPLE_PACKET, indent=2)})
        result = None
        if request.method == "POST" and form.is_valid():
            ref = selectors.pipeline_ref(pipeline.slug)
            assert ref is not None
            try:
                # As the logged-in user: no config they could not read in the config store's admin.
                result = services.pipeline_dry_run(
                    ref, form.cleaned_data["packet"], reader=ConfigReader.from_user(request.user)
                )
            except (ConfigReadDenied, services.RunOverBudget) as exc:
                form.add_error("packet", str(exc.detail))
        if result is not None:
            for entry in result["trace"]:
                entry["before_json"] = json.dumps(entry.get("before"), indent=2, sort_keys=True)
                entry["after_json"] = json.dumps(entry.get("after"), indent=2, sort_keys=True)
                entry["changed"] = entry.get("before") != entry.get("after")
            result["packet_json"] = json.dumps(result["packet"], indent=2, sort_keys=True)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": pipeline,
            "title": f"Dry run: {pipeline.slug} (version {pipeline.version})",
            "form": form,
            "result": result,
            "steps": selectors.steps_ordered(pipeline),
        }
        return TemplateResponse(request, "admin/pipelines/pipeline/dry_run.html", context)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class _HidesPackets:
    """Packets can hold config values read by enrich steps: only staff who may read config see them."""

    packet_fields: tuple[str, ...] = ()

    def get_exclude(self, request: HttpRequest, obj: Any = None):  # type: ignore[no-untyped-def]
        excluded = list(super().get_exclude(request, obj) or [])  # type: ignore[misc]
        if not ConfigReader.from_user(request.user).reads_all:
            excluded.extend(self.packet_fields)
        return excluded


@admin.register(Run)
class RunAdmin(_HidesPackets, ReadOnlyAdmin):
    list_display = ("id", "pipeline", "version", "mode", "status", "duration_ms", "created_at")
    list_filter = ("status", "mode", "pipeline")
    search_fields = ("request_id",)  # not `error`: it can quote packet values
    packet_fields = ("input", "output", "trace", "chained", "error")


@admin.register(Delivery)
class DeliveryAdmin(_HidesPackets, ReadOnlyAdmin):
    list_display = ("id", "pipeline", "service", "status", "attempts", "last_status_code", "last_error", "created_at")
    list_filter = ("status", "pipeline")
    packet_fields = ("packet",)


@admin.register(StepStats)
class StepStatsAdmin(ReadOnlyAdmin):
    list_display = ("pipeline", "step", "received", "sent", "dropped", "errors", "skipped", "updated_at")
    list_filter = ("pipeline",)
