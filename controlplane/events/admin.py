"""Admin for the event log (read-only), webhook subscriptions and their delivery log."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from controlplane.egress import EgressDenied, Purpose, check_url
from controlplane.events import services
from controlplane.events.models import Event, WebhookDelivery, WebhookSubscription


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    """The append-only log: searchable, filterable, never editable."""

    list_display = ["id", "kind", "subject", "actor", "created_at", "request_id"]
    list_filter = ["kind", "created_at"]
    search_fields = ["kind", "subject", "actor", "request_id"]
    readonly_fields = ["kind", "subject", "actor", "data", "request_id", "created_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False


class WebhookSubscriptionForm(forms.ModelForm):
    """Checks the URL against the egress guard and the kinds list, as the API does."""

    secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave blank to keep (or generate) the secret.",
    )

    class Meta:
        model = WebhookSubscription
        fields = ["name", "url", "kinds", "secret", "active"]

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        try:
            check_url(url, purpose=Purpose.WEBHOOK)
        except EgressDenied as exc:
            raise ValidationError(str(exc)) from None
        return url

    def clean_kinds(self):  # type: ignore[no-untyped-def]
        kinds = self.cleaned_data.get("kinds")
        if not isinstance(kinds, list) or not kinds or not all(isinstance(k, str) and k for k in kinds):
            raise ValidationError('A JSON list of kind patterns, e.g. ["check.*"].')
        return kinds


class DeliveryInline(admin.TabularInline):
    model = WebhookDelivery
    extra = 0
    can_delete = False
    max_num = 0
    fields = ["event", "status", "attempts", "last_status_code", "last_error", "next_attempt_at", "delivered_at"]
    readonly_fields = fields
    ordering = ["-id"]


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(admin.ModelAdmin):
    """Subscriptions with their recent deliveries; the secret is write-only."""

    form = WebhookSubscriptionForm
    list_display = ["name", "url", "kinds", "active", "updated_at"]
    list_filter = ["active"]
    search_fields = ["name", "url"]
    inlines = [DeliveryInline]

    def save_model(self, request: HttpRequest, obj: WebhookSubscription, form, change: bool) -> None:  # type: ignore[no-untyped-def]
        actor = f"user:{request.user.get_username()}"
        secret = form.cleaned_data.get("secret") or ""
        if change:
            fields = {k: form.cleaned_data[k] for k in ("name", "url", "kinds", "active")}
            if secret:
                fields["secret"] = secret
            services.webhook_subscription_update(WebhookSubscription.objects.get(pk=obj.pk), actor=actor, **fields)
        else:
            created, generated = services.webhook_subscription_create(
                name=obj.name, url=obj.url, kinds=obj.kinds, secret=secret, active=obj.active, actor=actor
            )
            obj.pk = created.pk
            if not secret:
                self.message_user(request, f"Generated signing secret (shown once): {generated}")

    # Deletes go through the service too (change-page delete and the bulk action), so they emit
    # `webhook.deleted` like an API delete instead of a silent QuerySet.delete().
    def delete_model(self, request: HttpRequest, obj: WebhookSubscription) -> None:
        services.webhook_subscription_delete(obj, actor=f"user:{request.user.get_username()}")

    def delete_queryset(self, request: HttpRequest, queryset) -> None:  # type: ignore[no-untyped-def]
        actor = f"user:{request.user.get_username()}"
        for subscription in queryset:
            services.webhook_subscription_delete(subscription, actor=actor)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """The delivery log: status, attempts, last error."""

    list_display = [
        "id",
        "subscription",
        "event",
        "status",
        "attempts",
        "last_status_code",
        "next_attempt_at",
        "delivered_at",
    ]
    list_filter = ["status", "subscription"]
    search_fields = ["last_error", "event__kind"]
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False
