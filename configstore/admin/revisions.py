"""Revision admin: read-only history with "roll back to this revision"."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from configstore import selectors, services
from configstore.access import ChangeNotAllowed
from configstore.admin.common import _config_actor, _short
from configstore.models import Revision


@admin.register(Revision)
class RevisionAdmin(admin.ModelAdmin):
    """History, read-only; "roll back to this revision" creates a new revision."""

    list_display = ["number", "namespace", "actor", "origin", "message", "change_count", "created_at"]
    list_filter = ["namespace", "origin"]
    search_fields = ["message", "actor"]
    actions = ["rollback_to"]
    fields = ["namespace", "number", "actor", "origin", "message", "created_at", "change_table"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    @admin.display(description="changes")
    def change_count(self, obj: Revision) -> int:
        return len(obj.changes)

    @admin.display(description="changes")
    def change_table(self, obj: Revision) -> str:
        rows = (
            (c["key"], c["layer"], c["action"], _short(c.get("old")), _short(c.get("new")))
            for c in selectors.public_changes(obj)
        )
        return format_html(
            "<table><tr><th>key</th><th>layer</th><th>action</th><th>old</th><th>new</th></tr>{}</table>",
            format_html_join(
                "", "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td></tr>", rows
            ),
        )

    @admin.action(description="Roll back to the selected revision")
    def rollback_to(self, request: HttpRequest, queryset: QuerySet[Revision]) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one revision to roll back to.", messages.ERROR)
            return
        target = queryset.select_related("namespace").get()
        try:
            revision = services.config_rollback(
                namespace=target.namespace, to_revision=target.number, actor=_config_actor(request)
            )
        except ChangeNotAllowed as exc:
            self.message_user(request, f"Rollback refused: {exc.detail}", messages.ERROR)
            return
        except ValidationError as exc:
            self.message_user(
                request,
                f"Rollback refused: {'; '.join(f'{k}: {v}' for k, v in exc.message_dict.items())}",
                messages.ERROR,
            )
            return
        if revision is None:
            self.message_user(request, "Nothing to roll back: the config already matches that revision.")
        else:
            self.message_user(
                request, f"Rolled {target.namespace} back to revision {target.number} as revision {revision.number}."
            )
