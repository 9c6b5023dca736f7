"""Admin for API keys: the plaintext is shown once, on the page after adding."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest
from django.utils.html import format_html

from controlplane.access import services
from controlplane.access.models import APIKey
from controlplane.access.scopes import ALL_SCOPES
from controlplane.env import RATE_RE


class APIKeyAddForm(forms.ModelForm):
    """Add form: the fields an operator chooses; prefix and hash are generated."""

    scopes = forms.MultipleChoiceField(choices=[(s, s) for s in ALL_SCOPES], widget=forms.CheckboxSelectMultiple)
    namespaces = forms.CharField(required=False, help_text="Comma-separated config namespaces; empty = all.")

    class Meta:
        model = APIKey
        fields = ["name", "scopes", "rate", "namespaces", "expiry_date"]

    def clean_rate(self) -> str:
        rate = self.cleaned_data.get("rate", "")
        if rate and not RATE_RE.match(rate):
            raise forms.ValidationError("A rate looks like 600/m, 100/h or 10/s.")
        return rate

    def clean_namespaces(self) -> list[str]:
        return [n.strip() for n in (self.cleaned_data.get("namespaces") or "").split(",") if n.strip()]


@admin.register(APIKey)
class APIKeyAdmin(admin.ModelAdmin):
    """Keys listed by prefix, scopes, last use and expiry; revoke as an action."""

    list_display = ["name", "prefix", "scope_list", "rate", "last_used_at", "expiry_date", "status_badge", "created"]
    list_filter = ["revoked", "created"]
    search_fields = ["name", "prefix"]
    readonly_fields = [
        "prefix",
        "scopes",
        "namespaces",
        "rate",
        "created",
        "last_used_at",
        "revoked",
        "revoked_at",
        "created_by",
        "expiry_date",
    ]
    actions = ["revoke_keys"]

    def get_form(self, request, obj=None, **kwargs):  # type: ignore[no-untyped-def]
        if obj is None:
            kwargs["form"] = APIKeyAddForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        return self.readonly_fields if obj is not None else []

    def get_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        if obj is None:
            return ["name", "scopes", "rate", "namespaces", "expiry_date"]
        return ["name", *self.readonly_fields]

    @admin.display(description="scopes")
    def scope_list(self, obj: APIKey) -> str:
        return ", ".join(obj.scopes)

    @admin.display(description="status")
    def status_badge(self, obj: APIKey) -> str:
        if obj.revoked:
            return format_html('<span style="color:#b00">{}</span>', "revoked")
        if obj.is_expired:
            return format_html('<span style="color:#a60">{}</span>', "expired")
        return format_html('<span style="color:#070">{}</span>', "active")

    def save_model(self, request: HttpRequest, obj: APIKey, form, change: bool) -> None:  # type: ignore[no-untyped-def]
        if change:
            services.api_key_rename(
                APIKey.objects.get(pk=obj.pk), name=obj.name, actor=f"user:{request.user.get_username()}"
            )
            return
        key, plaintext = services.api_key_create(
            name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes"],
            rate=form.cleaned_data.get("rate", ""),
            namespaces=form.cleaned_data.get("namespaces", []),
            expires_at=form.cleaned_data.get("expiry_date"),
            created_by=request.user,
            actor=f"user:{request.user.get_username()}",
        )
        obj.pk = key.pk
        obj.prefix = key.prefix
        messages.warning(
            request,
            format_html("API key created. Copy it now, it will not be shown again: <code>{}</code>", plaintext),
        )

    @admin.action(description="Revoke selected keys")
    def revoke_keys(self, request: HttpRequest, queryset) -> None:  # type: ignore[no-untyped-def]
        count = 0
        for key in queryset:
            if not key.revoked:
                services.api_key_revoke(key, actor=f"user:{request.user.get_username()}")
                count += 1
        self.message_user(request, f"Revoked {count} key(s).")


# The library registers its own concrete key model; operators should only see ours.
try:
    from rest_framework_api_key.models import APIKey as LibraryAPIKey

    admin.site.unregister(LibraryAPIKey)
except admin.sites.NotRegistered:
    pass
