"""Namespace admin: created, described and deleted through the services; the import page."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from configstore import services
from configstore.access import ChangeNotAllowed
from configstore.admin.common import _actor, _config_actor
from configstore.formats import FORMATS
from configstore.models import Namespace


class ImportForm(forms.Form):
    """A document to import into a namespace's database layer (`config_import`)."""

    document = forms.CharField(widget=forms.Textarea(attrs={"rows": 16, "cols": 90}), required=False, strip=False)
    format = forms.ChoiceField(choices=[(f, f) for f in FORMATS], initial="yaml")  # noqa: A003 - the field's name
    replace = forms.BooleanField(required=False, help_text="Also delete database-layer keys the document lacks.")
    allow_empty = forms.BooleanField(
        required=False, help_text="With replace: an empty document may delete every key (off: refused)."
    )
    message = forms.CharField(required=False, max_length=500)


@admin.register(Namespace)
class NamespaceAdmin(admin.ModelAdmin):
    """Namespaces with their revision; created and described through the services; import page."""

    list_display = ["name", "description", "revision", "updated_at"]
    search_fields = ["name", "description"]
    readonly_fields = ["revision", "rules_version", "created_at", "updated_at", "import_link"]
    fields = ["name", "description", "revision", "rules_version", "created_at", "updated_at", "import_link"]

    @admin.display(description="import")
    def import_link(self, obj: Namespace) -> str:
        if obj.pk is None:
            return "-"
        url = reverse("admin:configstore_namespace_import", args=[obj.pk])
        return format_html('<a href="{}">Import a document…</a>', url)

    def get_urls(self):  # type: ignore[no-untyped-def]
        extra = [
            path(
                "<int:object_id>/import/",
                self.admin_site.admin_view(self.import_view),
                name="configstore_namespace_import",
            )
        ]
        return extra + super().get_urls()

    def import_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """Import through `config_import` as the logged-in user (same rule as the API: secrets, rules)."""
        namespace = get_object_or_404(Namespace, pk=object_id)
        if not (request.user.has_perm("configstore.add_entry") and request.user.has_perm("configstore.change_entry")):
            raise PermissionDenied
        form = ImportForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            if data["replace"] and not request.user.has_perm("configstore.delete_entry"):
                raise PermissionDenied
            try:
                revision = services.config_import(
                    namespace=namespace,
                    text=data["document"],
                    fmt=data["format"],
                    replace=data["replace"],
                    allow_empty=data["allow_empty"],
                    message=data["message"],
                    actor=_config_actor(request),
                )
            except ChangeNotAllowed as exc:
                form.add_error(None, str(exc.detail))
            except ValidationError as exc:
                for key, problems in exc.message_dict.items():
                    for problem in problems:
                        form.add_error(
                            "document" if key == "body" else None, problem if key == "body" else f"{key}: {problem}"
                        )
            else:
                if revision is None:
                    self.message_user(request, "Nothing changed: the document matches what is stored.")
                else:
                    self.message_user(request, f"Imported as revision {revision.number}.")
                return HttpResponseRedirect(reverse("admin:configstore_namespace_change", args=[namespace.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "namespace": namespace,
            "form": form,
            "title": f"Import into {namespace}",
        }
        return TemplateResponse(request, "admin/configstore/namespace/import.html", context)

    def get_deleted_objects(self, objs, request):  # type: ignore[no-untyped-def]
        """What deleting `objs` needs is the service's rule, not each related admin's page permissions.

        Revisions and source-layer entries are never deleted on their own pages, but go with their
        namespace; what a namespace deletion does need: secrets for secret entries, operator for sources.
        """
        deleted, counts, _page_perms, protected = super().get_deleted_objects(objs, request)
        actor = _config_actor(request)
        needed: set[str] = set()
        for namespace in objs:
            if not actor.may_secrets and namespace.entries.filter(secret=True).exists():
                needed.add("secret entries (configstore.manage_secrets)")
            if not actor.is_operator and namespace.sources.exists():
                needed.add("sources (superusers only)")
        return deleted, counts, needed, protected

    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        return [*self.readonly_fields, "name"] if obj else self.readonly_fields

    def save_model(self, request: HttpRequest, obj: Namespace, form, change: bool) -> None:  # type: ignore[no-untyped-def]
        if change:
            services.namespace_update(namespace=obj, description=obj.description, actor=_actor(request))
        else:
            created = services.namespace_create(name=obj.name, description=obj.description, actor=_actor(request))
            obj.pk = created.pk

    def delete_model(self, request: HttpRequest, obj: Namespace) -> None:
        try:
            services.namespace_delete(namespace=obj, actor=_config_actor(request))
        except ChangeNotAllowed as exc:
            self.message_user(request, f"{obj} not deleted: {exc.detail}", messages.ERROR)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Namespace]) -> None:
        for namespace in queryset:
            self.delete_model(request, namespace)
