"""Entry admin: database-layer entries edited with CAS and a dry-run check; source layers read-only."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.html import format_html, format_html_join

from configstore import selectors, services
from configstore.access import ChangeNotAllowed, ConfigActor
from configstore.admin.common import _config_actor, _short
from configstore.models import MASK, Entry, Revision
from controlplane.errors import PreconditionFailed


class EntryForm(forms.ModelForm):
    """Edit one database-layer entry: `clean` checks it with a dry run of `config_entry_set` (CAS, rules,
    authorization) and writes nothing; `EntryAdmin.save_model` applies it."""

    value = forms.JSONField(
        required=False,
        help_text='JSON: 5432, "text", true, [1, 2], {"a": 1}. Secrets show as ********; leave it to keep the value.',
    )
    expected_revision = forms.IntegerField(widget=forms.HiddenInput, required=False)

    class Meta:
        model = Entry
        fields = ["namespace", "key", "value", "secret", "description"]

    actor: ConfigActor  # set by EntryAdmin.get_form from the request's user

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A read-only page (source-layer entries, secrets without the permission) has none of these fields.
        if self.instance.pk:
            for name in ("namespace", "key"):
                if name in self.fields:
                    self.fields[name].disabled = True
            self.initial["expected_revision"] = self.instance.revision
            if self.instance.secret:
                self.initial["value"] = MASK
        else:
            self.initial["expected_revision"] = 0
        self.revision: Revision | None = None

    def write(self, *, dry_run: bool) -> Revision | None:
        """The form's change through the service: checked only (`dry_run`) or applied."""
        data = self.cleaned_data
        return services.config_entry_set(
            namespace=data["namespace"],
            key=data["key"],
            value=data.get("value"),
            secret=data.get("secret", False),
            description=data.get("description", ""),
            expected_revision=data.get("expected_revision") or 0,
            actor=self.actor,
            origin="admin",
            dry_run=dry_run,
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not self.errors:
            # A dry run: rule violations, stale saves and refusals become form errors; nothing is written.
            try:
                self.write(dry_run=True)
            except (ChangeNotAllowed, PreconditionFailed, ValidationError) as exc:
                self.add_service_error(exc)
        return data

    def _post_clean(self) -> None:
        # The service checks the entry (key syntax, uniqueness per layer, rules) in `clean`; the model's
        # own checks would only repeat them with other words.
        return None

    def add_service_error(self, exc: Exception) -> None:
        """A refusal of the service as form errors (on the value or key field when it is about them)."""
        data = self.cleaned_data
        if isinstance(exc, ChangeNotAllowed):
            self.add_error(None, str(exc.detail))
        elif isinstance(exc, PreconditionFailed):
            self.add_error(
                None, f"Someone changed this entry since you opened it ({exc.detail}). Reload the page and try again."
            )
        elif isinstance(exc, ValidationError):
            for key, messages_ in exc.message_dict.items():
                field = (
                    "value"
                    if key == data["key"]
                    else "key"
                    if "Keys are" in " ".join(messages_) or "reserved" in " ".join(messages_)
                    else None
                )
                for message in messages_:
                    self.add_error(field, message if field else f"{key}: {message}")


class LayerFilter(admin.SimpleListFilter):
    """Filter entries by layer: database or a source."""

    title = "layer"
    parameter_name = "layer"

    def lookups(self, request, model_admin):  # type: ignore[no-untyped-def]
        return [("database", "database"), ("sources", "sources")]

    def queryset(self, request, queryset):  # type: ignore[no-untyped-def]
        if self.value() == "database":
            return queryset.filter(source__isnull=True)
        if self.value() == "sources":
            return queryset.filter(source__isnull=False)
        return queryset


@admin.register(Entry)
class EntryAdmin(admin.ModelAdmin):
    """Entries of every layer; database-layer entries are edited here, source layers are read-only."""

    form = EntryForm
    list_display = [
        "key",
        "namespace",
        "shown_value",
        "layer_name",
        "wins",
        "secret",
        "revision",
        "updated_by",
        "updated_at",
    ]
    list_filter = ["namespace", LayerFilter, "secret"]
    search_fields = ["key", "description"]
    list_select_related = ["namespace", "source"]

    READ_ONLY_FIELDS = ["namespace", "key", "shown_value", "secret", "description"]
    INFO_FIELDS = ["layers", "revision", "updated_by", "updated_at"]

    def get_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        if obj is not None and not self.has_change_permission(request, obj):
            return [*self.READ_ONLY_FIELDS, *self.INFO_FIELDS]
        fields = ["namespace", "key", "value", "secret", "description", "expected_revision"]
        return [*fields, *self.INFO_FIELDS] if obj else fields

    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        if obj is not None and not self.has_change_permission(request, obj):
            return [*self.READ_ONLY_FIELDS, *self.INFO_FIELDS]
        return self.INFO_FIELDS if obj else []

    def get_form(self, request, obj=None, change=False, **kwargs):  # type: ignore[no-untyped-def]
        form = super().get_form(request, obj, change=change, **kwargs)
        form.actor = _config_actor(request)  # type: ignore[attr-defined]
        return form

    def _may_write(self, request: HttpRequest, obj: Entry | None) -> bool:
        # Source layers belong to their files and environment; secrets need the secrets permission.
        return obj is None or (obj.source_id is None and (not obj.secret or _config_actor(request).may_secrets))

    def has_change_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return super().has_change_permission(request, obj) and self._may_write(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return super().has_delete_permission(request, obj) and self._may_write(request, obj)

    @admin.display(description="value")
    def shown_value(self, obj: Entry) -> str:
        return MASK if obj.secret else _short(obj.value)

    @admin.display(description="layer")
    def layer_name(self, obj: Entry) -> str:
        return obj.layer

    @admin.display(description="wins", boolean=True)
    def wins(self, obj: Entry) -> bool:
        return selectors.config_snapshot(obj.namespace.name).winners.get(obj.key) == obj.layer

    @admin.display(description="value in every layer")
    def layers(self, obj: Entry) -> str:
        entries = selectors.entry_layers(obj.namespace, obj.key)
        secret = any(e.secret for e in entries)
        winner = selectors.config_snapshot(obj.namespace.name).winners.get(obj.key)
        rows = [
            (
                e.layer,
                selectors.layer_priority(e.source)[0],
                MASK if secret else _short(e.value, 200),
                "wins" if e.layer == winner else ("disabled" if e.source and not e.source.enabled else "overridden"),
            )
            for e in entries
        ]
        return format_html(
            "<table><tr><th>layer</th><th>priority</th><th>value</th><th></th></tr>{}</table>",
            format_html_join("", "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>", rows),
        )

    def save_model(self, request, obj, form, change) -> None:  # type: ignore[no-untyped-def]
        obj.namespace, obj.key = form.cleaned_data["namespace"], form.cleaned_data["key"]
        try:
            form.revision = form.write(dry_run=False)
        except (ChangeNotAllowed, PreconditionFailed, ValidationError) as exc:
            # Changed between the form's check and this save (another writer won): nothing applied.
            request._config_save_refused = exc  # type: ignore[attr-defined]
            return
        saved = selectors.entry_database(obj.namespace, obj.key)
        if saved is not None:
            obj.pk, obj.revision = saved.pk, saved.revision
        if form.revision is None:
            messages.info(request, "Nothing changed.")

    def _refused_response(self, request: HttpRequest) -> HttpResponse | None:
        exc = getattr(request, "_config_save_refused", None)
        if exc is None:
            return None
        detail = getattr(exc, "detail", None) or "; ".join(getattr(exc, "messages", [str(exc)]))
        self.message_user(request, f"Not saved: {detail}", messages.ERROR)
        return HttpResponseRedirect(request.get_full_path())

    def response_add(self, request, obj, post_url_continue=None):  # type: ignore[no-untyped-def]
        return self._refused_response(request) or super().response_add(request, obj, post_url_continue)

    def response_change(self, request, obj):  # type: ignore[no-untyped-def]
        return self._refused_response(request) or super().response_change(request, obj)

    def save_related(self, request, form, formsets, change) -> None:  # type: ignore[no-untyped-def]
        return None

    def delete_model(self, request: HttpRequest, obj: Entry) -> None:
        try:
            services.config_entry_delete(
                namespace=obj.namespace, key=obj.key, actor=_config_actor(request), origin="admin"
            )
        except ChangeNotAllowed as exc:
            self.message_user(request, f"Not deleted: {exc.detail}", messages.ERROR)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Entry]) -> None:
        by_namespace: dict[int, list[Entry]] = {}
        for entry in queryset.filter(source__isnull=True).select_related("namespace"):
            by_namespace.setdefault(entry.namespace_id, []).append(entry)
        for entries in by_namespace.values():
            try:
                services.config_changes_apply(
                    namespace=entries[0].namespace,
                    changes=[services.EntryChange(key=e.key, action="delete") for e in entries],
                    actor=_config_actor(request),
                    origin="admin",
                    message="Deleted in the admin",
                )
            except (ChangeNotAllowed, ValidationError) as exc:
                detail = getattr(exc, "detail", None) or "; ".join(getattr(exc, "messages", []))
                self.message_user(request, f"{entries[0].namespace}: not deleted: {detail}", messages.ERROR)
