"""Admin for API keys: the plaintext is shown once, on the page after adding; every write is a service call.

Keys are addressed by their prefix (the primary key), so no admin URL, log entry or form value carries
the stored hash. The admin sign-in form is throttled here too (`login_throttle`).
"""

from __future__ import annotations

from functools import wraps
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html

from controlplane.access import services
from controlplane.access.login_throttle import login_failed, login_refusal
from controlplane.access.models import APIKey
from controlplane.access.scopes import ALL_SCOPES
from controlplane.access.validators import RATE_HELP, api_key_fields_validate

EDITABLE = ["name", "scopes", "rate", "namespaces", "expiry_date"]


class APIKeyForm(forms.ModelForm):
    """Add and change form: what a key may do; prefix and hash are generated. Validated by the service rule."""

    scopes = forms.MultipleChoiceField(choices=[(s, s) for s in ALL_SCOPES], widget=forms.CheckboxSelectMultiple)
    namespaces = forms.CharField(required=False, help_text="Comma-separated config namespaces; empty = all.")

    class Meta:
        model = APIKey
        fields = EDITABLE
        help_texts = {"rate": f"{RATE_HELP} Blank uses RATELIMIT_DEFAULT."}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and not self.is_bound:
            self.initial["namespaces"] = ", ".join(self.instance.namespaces)

    def clean_namespaces(self) -> list[str]:
        return [n.strip() for n in (self.cleaned_data.get("namespaces") or "").split(",") if n.strip()]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        # Only the fields this form edits (a revoked key's form has none), and only those that passed
        # their own field validation.
        given = {"expiry_date": "expires_at"}
        checked = {given.get(f, f): cleaned[f] for f in self.fields if f in cleaned}
        try:
            api_key_fields_validate(**checked, future_expiry=self.instance.pk is None)
        except ValidationError as exc:
            for field, problems in exc.message_dict.items():
                self.add_error("expiry_date" if field == "expires_at" else field, problems)
        return cleaned


def _actor(request: HttpRequest) -> str:
    return f"user:{request.user.get_username()}"


@admin.register(APIKey)
class APIKeyAdmin(admin.ModelAdmin):
    """Keys listed by prefix, scopes, last use and expiry; revoke as an action; edits and deletes via services."""

    form = APIKeyForm
    list_display = ["name", "prefix", "scope_list", "rate", "last_used_at", "expiry_date", "status_badge", "created"]
    list_filter = ["revoked", "created"]
    search_fields = ["name", "prefix"]
    readonly_fields = ["prefix", "created", "last_used_at", "revoked", "revoked_at", "created_by"]
    actions = ["revoke_keys"]

    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        if obj is None:
            return []
        # A revoked key stays revoked; editing what it may do would only confuse the record.
        return [*self.readonly_fields, *EDITABLE] if obj.revoked else self.readonly_fields

    def get_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        return EDITABLE if obj is None else [*EDITABLE, *self.readonly_fields]

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
        data = form.cleaned_data
        if change:
            if obj.revoked:
                return  # nothing editable
            services.api_key_update(
                APIKey.objects.get(pk=obj.pk),
                name=data["name"],
                scopes=data["scopes"],
                rate=data.get("rate", ""),
                namespaces=data.get("namespaces", []),
                expires_at=data.get("expiry_date"),
                actor=_actor(request),
            )
            return
        key, plaintext = services.api_key_create(
            name=data["name"],
            scopes=data["scopes"],
            rate=data.get("rate", ""),
            namespaces=data.get("namespaces", []),
            expires_at=data.get("expiry_date"),
            created_by=request.user,
            actor=_actor(request),
        )
        obj.pk = key.pk
        obj.prefix = key.prefix
        messages.warning(
            request,
            format_html("API key created. Copy it now, it will not be shown again: <code>{}</code>", plaintext),
        )

    def delete_model(self, request: HttpRequest, obj: APIKey) -> None:
        services.api_key_delete(obj, actor=_actor(request))

    def delete_queryset(self, request: HttpRequest, queryset) -> None:  # type: ignore[no-untyped-def]
        with transaction.atomic():  # one commit: every process drops the keys once, before the page returns
            for key in queryset:
                services.api_key_delete(key, actor=_actor(request))

    @admin.action(description="Revoke selected keys")
    def revoke_keys(self, request: HttpRequest, queryset) -> None:  # type: ignore[no-untyped-def]
        count = 0
        with transaction.atomic():
            for key in queryset:
                if not key.revoked:
                    services.api_key_revoke(key, actor=_actor(request))
                    count += 1
        self.message_user(request, f"Revoked {count} key(s).")


class ThrottledAdminAuthenticationForm(AdminAuthenticationForm):
    """The admin sign-in form, refusing a client or user name with too many failed attempts (`login_throttle`)."""

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username")
        refusal = login_refusal(self.request, username)
        if refusal is not None:
            self.request.login_retry_after = refusal[1]  # type: ignore[union-attr]
            raise ValidationError(refusal[0], code="throttled")
        try:
            return super().clean()
        except ValidationError as exc:
            if exc.code in ("invalid_login", "inactive"):
                login_failed(self.request, username)
            raise


def _throttled_login(view):  # type: ignore[no-untyped-def]
    """The admin login view, answering 429 with Retry-After when the sign-in was refused by the throttle."""

    @wraps(view)
    def login(request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        response = view(request, extra_context)
        retry_after = getattr(request, "login_retry_after", None)
        if retry_after is not None:
            response.status_code = 429
            response["Retry-After"] = str(retry_after)
        return response

    return login


admin.site.login_form = ThrottledAdminAuthenticationForm
# AdminSite builds its URL patterns from `self.login` when urls.py reads `admin.site.urls` (after
# autodiscover imported this module), so the wrapped view is the one routed.
admin.site.login = _throttled_login(admin.site.login)  # type: ignore[method-assign]

# The library registers its own concrete key model; operators should only see ours.
try:
    from rest_framework_api_key.models import APIKey as LibraryAPIKey

    admin.site.unregister(LibraryAPIKey)
except admin.sites.NotRegistered:
    pass
