"""Admin for the config store: every save goes through the same services (and rules) as the API.

Entry forms carry the revision they were opened at and refuse a stale save (compare-and-swap); the entry
page shows every layer's value and which one wins; revisions can be rolled back; a source shows the diff
its current content would apply before "reload now" applies it.

Authorization is the services' (configstore/access.py): each write passes the user's `ConfigActor`.
Superusers hold every capability. Other staff get what Django's model permissions give them on the
database layer (add/change/delete entry), need `configstore.manage_secrets` for anything touching a secret
entry, and cannot define, change or remove sources (operator territory: superusers only). Pages only
mirror that rule (read-only secret entries, no source buttons) so users are not offered what the
services would refuse.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.html import format_html, format_html_join

from configstore import selectors, services
from configstore.access import ChangeNotAllowed, ConfigActor
from configstore.models import MASK, Entry, Namespace, Revision, Rule, Source
from configstore.rules import validate_rule_params
from controlplane.errors import PreconditionFailed


def _actor(request: HttpRequest) -> str:
    return f"user:{request.user.get_username()}"


def _config_actor(request: HttpRequest) -> ConfigActor:
    """The logged-in user's capabilities for config writes."""
    return ConfigActor.from_user(request.user)


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@admin.register(Namespace)
class NamespaceAdmin(admin.ModelAdmin):
    """Namespaces with their revision; created and described through the services."""

    list_display = ["name", "description", "revision", "updated_at"]
    search_fields = ["name", "description"]
    readonly_fields = ["revision", "rules_version", "created_at", "updated_at"]
    fields = ["name", "description", "revision", "rules_version", "created_at", "updated_at"]

    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        return [*self.readonly_fields, "name"] if obj else self.readonly_fields

    def save_model(self, request: HttpRequest, obj: Namespace, form, change: bool) -> None:  # type: ignore[no-untyped-def]
        if change:
            services.namespace_update(namespace=obj, description=obj.description, actor=_actor(request))
        else:
            created = services.namespace_create(name=obj.name, description=obj.description, actor=_actor(request))
            obj.pk = created.pk

    def delete_model(self, request: HttpRequest, obj: Namespace) -> None:
        services.namespace_delete(namespace=obj, actor=_actor(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Namespace]) -> None:
        for namespace in queryset:
            services.namespace_delete(namespace=namespace, actor=_actor(request))


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


class RuleForm(forms.ModelForm):
    """A rule, checked by the rule engine before saving."""

    class Meta:
        model = Rule
        fields = ["namespace", "key", "kind", "params", "message"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if "kind" in data:
            for problem in validate_rule_params(
                data["kind"], data.get("params") if data.get("params") is not None else {}
            ):
                self.add_error("params", problem)
        return data


@admin.register(Rule)
class RuleAdmin(admin.ModelAdmin):
    """Validation rules; applied by every write path from the next save on."""

    form = RuleForm
    list_display = ["key", "kind", "params", "message", "namespace"]
    list_filter = ["namespace", "kind"]
    search_fields = ["key", "message"]

    def save_model(self, request, obj: Rule, form, change: bool) -> None:  # type: ignore[no-untyped-def]
        fields = {k: form.cleaned_data[k] for k in ("key", "kind", "params", "message")}
        fields["params"] = fields["params"] if fields["params"] is not None else {}
        if change:
            services.rule_update(rule=Rule.objects.get(pk=obj.pk), actor=_actor(request), **fields)
        else:
            obj.pk = services.rule_create(namespace=form.cleaned_data["namespace"], actor=_actor(request), **fields).pk

    def delete_model(self, request: HttpRequest, obj: Rule) -> None:
        services.rule_delete(rule=obj, actor=_actor(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Rule]) -> None:
        for rule in queryset:
            services.rule_delete(rule=rule, actor=_actor(request))


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
