"""Rule admin: rules checked by the rule engine, written through the services."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from configstore import services
from configstore.admin.common import _actor
from configstore.models import Rule
from configstore.rules import validate_rule_params


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
