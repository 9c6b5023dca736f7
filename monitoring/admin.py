"""Admin for monitoring: maintenance windows (through the services), metric series and roll-up watermarks."""

from __future__ import annotations

from django.contrib import admin

from controlplane.actors import actor_from_request
from monitoring.models import MaintenanceOrigin, MaintenanceWindow, MetricSeries, RollupWatermark
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


# Alerting (rules, channels, silences, alerts, notification outbox): its own module.
import monitoring.alerting.admin  # noqa: E402,F401
