"""Admin for monitoring: maintenance windows, the status page's listings and incidents (all through the
services), metric series and roll-up watermarks."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.utils import timezone

from controlplane.actors import actor_from_request
from monitoring.models import (
    Incident,
    IncidentUpdate,
    MaintenanceOrigin,
    MaintenanceWindow,
    MetricSeries,
    RollupWatermark,
    StatusPageService,
)
from monitoring.services import incidents as incident_services
from monitoring.services import maintenance as maintenance_services

MAINTENANCE_FIELDS = [name for name in maintenance_services.EDITABLE]


@admin.register(MaintenanceWindow)
class MaintenanceWindowAdmin(admin.ModelAdmin):
    """Maintenance windows: one-off or weekly in a time zone; registry-flag windows are read-only here."""

    list_display = [
        "name",
        "scope",
        "service",
        "instance",
        "kind",
        "starts_at",
        "ends_at",
        "timezone",
        "enabled",
        "origin",
    ]
    list_filter = ["scope", "kind", "origin", "enabled"]
    search_fields = ["name", "description", "service__name", "instance__instance_id"]
    list_select_related = ["service", "instance__service"]
    raw_id_fields = ["service", "instance"]
    fields = [*MAINTENANCE_FIELDS, "origin", "created_by", "created_at", "updated_at"]
    readonly_fields = ["origin", "created_by", "created_at", "updated_at"]

    def has_change_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        # A registry-flag window follows the flag: change the instance's maintenance instead.
        if obj is not None and obj.origin == MaintenanceOrigin.REGISTRY_FLAG:
            return False
        return super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change) -> None:  # type: ignore[no-untyped-def]
        values = {name: form.cleaned_data[name] for name in MAINTENANCE_FIELDS if name in form.cleaned_data}
        if change:
            saved = maintenance_services.maintenance_window_update(
                window=obj, actor=actor_from_request(request), **values
            )
        else:
            saved = maintenance_services.maintenance_window_create(actor=actor_from_request(request), **values)
        obj.pk = saved.pk

    def delete_model(self, request, obj) -> None:  # type: ignore[no-untyped-def]
        maintenance_services.maintenance_window_delete(window=obj, actor=actor_from_request(request))

    def delete_queryset(self, request, queryset) -> None:  # type: ignore[no-untyped-def]
        for window in queryset:
            maintenance_services.maintenance_window_delete(window=window, actor=actor_from_request(request))


@admin.register(MetricSeries)
class MetricSeriesAdmin(admin.ModelAdmin):
    """Series of the metric store (read-only: the roll-ups and samplers write them)."""

    list_display = ["kind", "target", "metric", "created_at"]
    list_filter = ["kind", "metric"]
    search_fields = ["target"]
    readonly_fields = ["kind", "target", "metric", "cursor", "created_at"]
    show_full_result_count = False  # no COUNT(*) over a large table on every page

    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False


@admin.register(RollupWatermark)
class RollupWatermarkAdmin(admin.ModelAdmin):
    """How far each roll-up level has come (read-only)."""

    list_display = ["name", "position", "updated_at"]

    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False


@admin.register(StatusPageService)
class StatusPageServiceAdmin(admin.ModelAdmin):
    """Which services the public status page shows, under which name and description, in which order."""

    list_display = ["service", "public", "display_name", "position"]
    list_filter = ["public"]
    search_fields = ["service__name", "display_name"]
    list_select_related = ["service"]
    raw_id_fields = ["service"]
    fields = ["service", "public", "display_name", "description", "position"]

    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        return ["service"] if obj is not None else []  # another service is another listing

    def save_model(self, request, obj, form, change) -> None:  # type: ignore[no-untyped-def]
        values = {name: form.cleaned_data[name] for name in incident_services.LISTING_FIELDS}
        saved = incident_services.status_listing_save(service=obj.service, actor=actor_from_request(request), **values)
        obj.pk = saved.pk

    def delete_model(self, request, obj) -> None:  # type: ignore[no-untyped-def]
        incident_services.status_listing_delete(row=obj, actor=actor_from_request(request))

    def delete_queryset(self, request, queryset) -> None:  # type: ignore[no-untyped-def]
        for row in queryset.select_related("service"):
            incident_services.status_listing_delete(row=row, actor=actor_from_request(request))


class IncidentForm(forms.ModelForm):
    class Meta:
        model = Incident
        fields = ["title", "started_at", "services"]

    def clean_started_at(self):  # type: ignore[no-untyped-def]
        started_at = self.cleaned_data["started_at"]
        if started_at > timezone.now():
            # Its first update is posted now, and announced work is a maintenance window, not an incident.
            raise forms.ValidationError("An incident starts now or in the past (schedule future work as maintenance).")
        return started_at


class IncidentUpdateInline(admin.TabularInline):
    """Updates are posted, never edited: the public history shows what was said when."""

    model = IncidentUpdate
    fields = ["status", "message", "author", "created_at"]
    readonly_fields = ["author", "created_at"]
    extra = 1
    can_delete = False
    ordering = ["-created_at", "-id"]

    def has_change_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    """Incidents for the status page: the status follows the newest update (investigating ... resolved)."""

    form = IncidentForm
    inlines = [IncidentUpdateInline]
    list_display = ["title", "status", "started_at", "resolved_at"]
    list_filter = ["status"]
    search_fields = ["title"]
    date_hierarchy = "started_at"
    raw_id_fields = ["services"]
    fields = ["title", "started_at", "services", "status", "resolved_at", "created_by"]
    readonly_fields = ["status", "resolved_at", "created_by"]

    def get_changeform_initial_data(self, request):  # type: ignore[no-untyped-def]
        return {"started_at": timezone.now(), **super().get_changeform_initial_data(request)}

    def save_model(self, request, obj, form, change) -> None:  # type: ignore[no-untyped-def]
        data = form.cleaned_data
        actor = actor_from_request(request)
        if change:
            saved = incident_services.incident_change(
                incident=obj, title=data["title"], started_at=data["started_at"], services=data["services"], actor=actor
            )
        else:
            saved = incident_services.incident_create(
                title=data["title"], started_at=data["started_at"], services=data["services"], actor=actor
            )
        obj.pk, obj.status, obj.resolved_at = saved.pk, saved.status, saved.resolved_at

    def save_related(self, request, form, formsets, change) -> None:  # type: ignore[no-untyped-def]
        # Services were set by the service call; each new update row is posted through the service, oldest
        # first, so the incident ends in the status of the last one.
        for formset in formsets:
            # What formset.save() would have recorded, for the admin's change message.
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
            for row in formset.extra_forms:
                if row.has_changed() and row.is_valid():
                    update = incident_services.incident_update_add(
                        incident=form.instance,
                        status=row.cleaned_data["status"],
                        message=row.cleaned_data["message"],
                        actor=actor_from_request(request),
                    )
                    formset.new_objects.append(update)

    def delete_model(self, request, obj) -> None:  # type: ignore[no-untyped-def]
        incident_services.incident_delete(incident=obj, actor=actor_from_request(request))

    def delete_queryset(self, request, queryset) -> None:  # type: ignore[no-untyped-def]
        for incident in queryset:
            incident_services.incident_delete(incident=incident, actor=actor_from_request(request))


# Alerting (rules, channels, silences, alerts, notification outbox): its own module.
import monitoring.alerting.admin  # noqa: E402,F401
