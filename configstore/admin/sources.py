"""Source admin: operator-only definitions, status, pending diff and "reload now"."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from configstore import selectors, services
from configstore.access import ChangeNotAllowed
from configstore.admin.common import _config_actor, _short
from configstore.models import Source


class SourceForm(forms.ModelForm):
    """A source definition, checked like the API does (path under the root, prefix shape)."""

    class Meta:
        model = Source
        fields = [
            "namespace",
            "name",
            "kind",
            "path",
            "format",
            "prefix",
            "priority",
            "enabled",
            "reload",
            "allow_empty",
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        from configstore.sources import SOURCE_KINDS

        if data.get("kind") in SOURCE_KINDS:
            candidate = Source(
                **{
                    k: data.get(k) or ("" if k in ("path", "format", "prefix") else None)
                    for k in ("kind", "path", "format", "prefix")
                }
            )
            for field, problems in SOURCE_KINDS[data["kind"]].definition_errors(candidate).items():
                for problem in problems:
                    self.add_error(field if field in self.fields else None, problem)
        return data


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    """File and env layers: status, last error, and the pending diff before reloading by hand.

    Defining, changing and removing sources is operator territory: superusers only, whatever model
    permissions other staff hold (the services refuse anyone else too).
    """

    form = SourceForm
    list_display = [
        "name",
        "namespace",
        "kind",
        "path",
        "prefix",
        "priority",
        "enabled",
        "reload",
        "last_loaded_at",
        "status",
    ]
    list_filter = ["namespace", "kind", "enabled"]
    actions = ["reload_now"]
    readonly_fields = ["pending_diff", "last_hash", "last_loaded_at", "last_error"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and _config_actor(request).is_operator

    def has_change_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return super().has_change_permission(request, obj) and _config_actor(request).is_operator

    def has_delete_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return super().has_delete_permission(request, obj) and _config_actor(request).is_operator

    @admin.display(description="status")
    def status(self, obj: Source) -> str:
        if obj.last_error:
            return format_html('<span style="color:#b00" title="{}">error</span>', obj.last_error)
        return "ok" if obj.last_loaded_at else "not loaded"

    @admin.display(description="pending changes (what reload now would apply)")
    def pending_diff(self, obj: Source) -> str:
        if obj.pk is None:
            return "-"
        diff, error = selectors.source_pending_diff(obj)
        if error:
            return format_html('<span style="color:#b00">Would be rejected: {}</span>', error)
        if not diff:
            return "No changes: the layer matches the source."
        return format_html(
            "<table><tr><th>key</th><th>action</th><th>now</th><th>after reload</th></tr>{}</table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td></tr>",
                ((d["key"], d["action"], _short(d["old"]), _short(d["new"])) for d in diff),
            ),
        )

    def save_model(self, request, obj: Source, form, change: bool) -> None:  # type: ignore[no-untyped-def]
        fields = {
            k: form.cleaned_data.get(k)
            for k in ("name", "kind", "path", "format", "prefix", "priority", "enabled", "reload", "allow_empty")
        }
        actor = _config_actor(request)
        if change:
            services.source_update(source=Source.objects.get(pk=obj.pk), actor=actor, **fields)
        else:
            namespace = form.cleaned_data["namespace"]
            created = services.source_create(namespace=namespace, actor=actor, **fields)
            obj.pk = created.pk
            result = services.source_reload(source=created, force=True, actor=actor)
            if result.error:
                messages.error(request, f"Source saved but not applied: {result.error}")

    def delete_model(self, request: HttpRequest, obj: Source) -> None:
        services.source_delete(source=obj, actor=_config_actor(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Source]) -> None:
        for source in queryset.select_related("namespace"):
            services.source_delete(source=source, actor=_config_actor(request))

    @admin.action(description="Reload now (apply the pending changes)")
    def reload_now(self, request: HttpRequest, queryset: QuerySet[Source]) -> None:
        for source in queryset.select_related("namespace"):
            try:
                result = services.source_reload(source=source, force=True, actor=_config_actor(request))
            except ChangeNotAllowed as exc:
                self.message_user(request, f"{source}: not applied: {exc.detail}", messages.ERROR)
                continue
            level = messages.ERROR if result.error else messages.SUCCESS
            detail = (
                f" (revision {result.revision})" if result.revision else f": {result.error}" if result.error else ""
            )
            self.message_user(request, f"{source}: {result.status}{detail}", level)
