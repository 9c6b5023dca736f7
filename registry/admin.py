"""Admin: services with status badges and counts, instances, checks with run/enable/maintenance actions.

Every change goes through `registry.services`, so the admin emits the same events as the API.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from registry import selectors, services
from registry.models import (
    CHECK_CONFIG_FIELDS,
    CHECK_MASKED_FIELDS,
    CHECK_STATE_FIELDS,
    Check,
    Instance,
    InstanceStatus,
    Service,
)
from registry.probes.base import redact_params
from registry.probes.http import redact_headers

BADGE_COLOURS = {
    "passing": "#2e7d32",
    "warning": "#ef6c00",
    "critical": "#c62828",
    "unknown": "#757575",
    "maintenance": "#1565c0",
}


def badge(status: str) -> str:
    return format_html(
        '<span style="background:{};color:#fff;padding:1px 7px;border-radius:8px;font-size:11px">{}</span>',
        BADGE_COLOURS.get(status, "#757575"),
        status,
    )


def actor(request) -> str:  # type: ignore[no-untyped-def]
    return f"user:{request.user.get_username()}"


class InstanceStatusFilter(admin.SimpleListFilter):
    """Services having an instance in the chosen status."""

    title = "instance status"
    parameter_name = "status"

    def lookups(self, request, model_admin):  # type: ignore[no-untyped-def]
        return InstanceStatus.choices

    def queryset(self, request, queryset):  # type: ignore[no-untyped-def]
        if self.value() in InstanceStatus.values:
            return queryset.filter(pk__in=Instance.objects.filter(status=self.value()).values("service_id"))
        return queryset


class TagFilter(admin.SimpleListFilter):
    """Services carrying the chosen tag."""

    title = "tag"
    parameter_name = "tag"

    def lookups(self, request, model_admin):  # type: ignore[no-untyped-def]
        tags = sorted({tag for tags in Service.objects.values_list("tags", flat=True) for tag in tags or []})
        return [(tag, tag) for tag in tags[:100]]

    def queryset(self, request, queryset):  # type: ignore[no-untyped-def]
        return queryset.with_tag(self.value()) if self.value() else queryset


class InstanceInline(admin.TabularInline):
    """A service's instances (registered over the API; read-only here)."""

    model = Instance
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ["instance_id", "url_display", "status_badge", "maintenance", "last_seen_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    @admin.display(description="URL")
    def url_display(self, obj: Instance) -> str:
        return obj.url

    @admin.display(description="status")
    def status_badge(self, obj: Instance) -> str:
        return badge(obj.status)


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    """Services: status badges, instance counts, filters by type, status and tag; search."""

    list_display = ["name", "display_name", "type", "health_badges", "instances_total", "owner", "updated_at"]
    list_filter = ["type", InstanceStatusFilter, TagFilter]
    search_fields = ["name", "display_name", "description", "owner"]
    fields = ["name", "display_name", "type", "description", "owner", "tags", "capabilities", "metadata"]
    inlines = [InstanceInline]

    def get_queryset(self, request):  # type: ignore[no-untyped-def]
        return super().get_queryset(request).with_counts()

    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        return ["name"] if obj else []

    @admin.display(description="health")
    def health_badges(self, obj: Service) -> str:
        counts = [(status, n) for status, n in selectors.health_summary(obj).items() if n]
        if not counts:
            return "-"
        return format_html_join(" ", "{} {}", ((badge(status), n) for status, n in counts))

    @admin.display(description="instances", ordering="instance_count")
    def instances_total(self, obj: Service) -> int:
        return getattr(obj, "instance_count", 0)

    def save_model(self, request, obj, form, change) -> None:  # type: ignore[no-untyped-def]
        data = {name: form.cleaned_data[name] for name in form.cleaned_data if name != "name"}
        if change:
            services.service_update(service=obj, actor=actor(request), **data)
        else:
            created = services.service_create(name=form.cleaned_data["name"], actor=actor(request), **data)
            obj.pk = created.pk

    def delete_model(self, request, obj) -> None:  # type: ignore[no-untyped-def]
        services.service_delete(service=obj, actor=actor(request))

    def delete_queryset(self, request, queryset) -> None:  # type: ignore[no-untyped-def]
        for service in queryset:
            services.service_delete(service=service, actor=actor(request))


class CheckInline(admin.TabularInline):
    """An instance's checks with their state."""

    model = Check
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ["name", "kind", "status_badge", "enabled", "interval", "last_latency_ms", "next_run_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    @admin.display(description="status")
    def status_badge(self, obj: Check) -> str:
        return badge(obj.status)


@admin.register(Instance)
class InstanceAdmin(admin.ModelAdmin):
    """Instances (registered over the API): maintenance and deregistration from here."""

    list_display = ["__str__", "address", "port", "scheme", "status_badge", "maintenance", "last_seen_at"]
    list_filter = ["status", "maintenance", "scheme", "service__type"]
    search_fields = ["instance_id", "address", "service__name"]
    list_select_related = ["service"]
    readonly_fields = [
        "service",
        "instance_id",
        "address",
        "port",
        "scheme",
        "tags",
        "metadata",
        "status",
        "maintenance",
        "maintenance_reason",
        "deregister_critical_after",
        "critical_since",
        "registered_at",
        "last_seen_at",
    ]
    inlines = [CheckInline]
    actions = ["maintenance_on", "maintenance_off"]

    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Instance) -> str:
        return badge(obj.status)

    @admin.action(description="Maintenance on")
    def maintenance_on(self, request, queryset: QuerySet[Instance]) -> None:  # type: ignore[no-untyped-def]
        for instance in queryset:
            services.instance_set_maintenance(
                instance=instance, enabled=True, reason="set in admin", actor=actor(request)
            )
        self.message_user(request, f"{queryset.count()} instance(s) in maintenance.", messages.SUCCESS)

    @admin.action(description="Maintenance off")
    def maintenance_off(self, request, queryset: QuerySet[Instance]) -> None:  # type: ignore[no-untyped-def]
        for instance in queryset:
            services.instance_set_maintenance(instance=instance, enabled=False, actor=actor(request))
        self.message_user(request, f"{queryset.count()} instance(s) out of maintenance.", messages.SUCCESS)

    def delete_model(self, request, obj) -> None:  # type: ignore[no-untyped-def]
        services.instance_deregister(instance=obj, actor=actor(request), reason="deleted in admin")

    def delete_queryset(self, request, queryset) -> None:  # type: ignore[no-untyped-def]
        for instance in queryset.select_related("service"):
            services.instance_deregister(instance=instance, actor=actor(request), reason="deleted in admin")


@admin.register(Check)
class CheckAdmin(admin.ModelAdmin):
    """Checks: state, next run and scheduling lag; actions run now, enable, disable, maintenance on/off."""

    list_display = [
        "name",
        "instance",
        "kind",
        "status_badge",
        "enabled",
        "interval",
        "last_latency_ms",
        "next_run_at",
        "lag",
    ]
    list_filter = ["status", "kind", "enabled", "instance__service__type"]
    search_fields = ["name", "instance__instance_id", "instance__service__name"]
    list_select_related = ["instance__service"]
    # Configuration that can carry credentials is shown masked (`<field>_masked`), never as a form field.
    exclude = ["claim_token", *sorted(CHECK_MASKED_FIELDS)]
    readonly_fields = [
        "instance",
        "name",
        *CHECK_STATE_FIELDS,
        "lag",
        "claimed_until",
        "recent_results",
        *(f"{name}_masked" if name in CHECK_MASKED_FIELDS else name for name in CHECK_CONFIG_FIELDS),
    ]
    actions = ["run_now", "enable", "disable", "maintenance_on", "maintenance_off"]

    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Check) -> str:
        return badge(obj.status)

    @admin.display(description="headers")
    def headers_masked(self, obj: Check) -> dict[str, str]:
        return redact_headers(obj.headers)

    @admin.display(description="params")
    def params_masked(self, obj: Check) -> dict[str, object]:
        return redact_params(obj.params)

    @admin.display(description="scheduling lag")
    def lag(self, obj: Check) -> str:
        """How far past due a check is right now (a healthy scheduler keeps this near zero)."""
        if not obj.enabled or obj.next_run_at is None or obj.kind == "ttl":
            return "-"
        seconds = (timezone.now() - obj.next_run_at).total_seconds()
        return f"{seconds:.1f} s late" if seconds > 0 else "on time"

    @admin.display(description="last results")
    def recent_results(self, obj: Check) -> str:
        rows = selectors.check_results(check=obj)[:20]
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    f"{r.created_at:%Y-%m-%d %H:%M:%S}",
                    badge(r.status),
                    "-" if r.latency_ms is None else f"{r.latency_ms:.1f} ms",
                    r.output[:200],
                )
                for r in rows
            ),
        )
        return format_html(
            "<table><tr><th>time</th><th>status</th><th>latency</th><th>output</th></tr>{}</table>", body
        )

    @admin.action(description="Run now")
    def run_now(self, request, queryset: QuerySet[Check]) -> None:  # type: ignore[no-untyped-def]
        count = services.check_mark_due(checks=queryset)
        self.message_user(request, f"{count} check(s) queued to run on the next dispatcher tick.", messages.SUCCESS)

    @admin.action(description="Enable")
    def enable(self, request, queryset: QuerySet[Check]) -> None:  # type: ignore[no-untyped-def]
        count = services.check_set_enabled(checks=queryset, enabled=True, actor=actor(request))
        self.message_user(request, f"{count} check(s) enabled.", messages.SUCCESS)

    @admin.action(description="Disable")
    def disable(self, request, queryset: QuerySet[Check]) -> None:  # type: ignore[no-untyped-def]
        count = services.check_set_enabled(checks=queryset, enabled=False, actor=actor(request))
        self.message_user(request, f"{count} check(s) disabled.", messages.SUCCESS)

    @admin.action(description="Maintenance on (their instances)")
    def maintenance_on(self, request, queryset: QuerySet[Check]) -> None:  # type: ignore[no-untyped-def]
        for instance in Instance.objects.filter(checks__in=queryset).distinct():
            services.instance_set_maintenance(
                instance=instance, enabled=True, reason="set in admin", actor=actor(request)
            )
        self.message_user(request, "Instances put in maintenance.", messages.SUCCESS)

    @admin.action(description="Maintenance off (their instances)")
    def maintenance_off(self, request, queryset: QuerySet[Check]) -> None:  # type: ignore[no-untyped-def]
        for instance in Instance.objects.filter(checks__in=queryset).distinct():
            services.instance_set_maintenance(instance=instance, enabled=False, actor=actor(request))
        self.message_user(request, "Instances out of maintenance.", messages.SUCCESS)
