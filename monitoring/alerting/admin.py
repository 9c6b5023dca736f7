"""Admin for alerting: rules, channels and silences saved through their services; alerts read-only."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from controlplane.actors import actor_from_request
from monitoring.api.alerts import masked_url
from monitoring.models import AlertRule, AlertState, AlertTransition, Notification, NotificationChannel, Silence
from monitoring.services import alerts as alert_services
from monitoring.services import silences as silence_services


class _ServiceErrorsForm(forms.ModelForm):
    """Runs the service's field checks in `clean`, so the admin shows the same errors as the API."""

    def service_errors(self, instance: Any) -> dict[str, list[str]]:
        raise NotImplementedError

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        for name, value in data.items():
            if name in {f.name for f in self.instance._meta.concrete_fields}:
                setattr(self.instance, name, value)
        for name, problems in self.service_errors(self.instance).items():
            self.add_error(name if name in self.fields else None, problems)
        return data


class AlertRuleForm(_ServiceErrorsForm):
    class Meta:
        model = AlertRule
        fields = [*alert_services.RULE_FIELDS, "channels"]

    def service_errors(self, instance: AlertRule) -> dict[str, list[str]]:
        return alert_services.rule_errors(instance)


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    """Alert rules; saving goes through `alert_rule_create` / `alert_rule_update` (events, checks)."""

    form = AlertRuleForm
    list_display = ["name", "enabled", "target_kind", "target", "metric", "comparison", "threshold", "severity"]
    list_filter = ["enabled", "severity", "target_kind", "metric"]
    search_fields = ["name", "target", "description"]
    filter_horizontal = ["channels"]
    actions = ["enable", "disable"]

    def save_model(self, request: HttpRequest, obj: AlertRule, form: Any, change: bool) -> None:
        fields = {name: form.cleaned_data[name] for name in alert_services.RULE_FIELDS if name in form.cleaned_data}
        actor = actor_from_request(request)
        if change:
            saved = alert_services.alert_rule_update(rule=obj, actor=actor, **fields)
        else:
            saved = alert_services.alert_rule_create(actor=actor, **fields)
        obj.pk = saved.pk
        obj.refresh_from_db()

    def delete_model(self, request: HttpRequest, obj: AlertRule) -> None:
        alert_services.alert_rule_delete(rule=obj, actor=actor_from_request(request))

    @admin.action(description="Enable the selected rules")
    def enable(self, request: HttpRequest, queryset: QuerySet[AlertRule]) -> None:
        for rule in queryset:
            alert_services.alert_rule_update(rule=rule, enabled=True, actor=actor_from_request(request))

    @admin.action(description="Disable the selected rules")
    def disable(self, request: HttpRequest, queryset: QuerySet[AlertRule]) -> None:
        for rule in queryset:
            alert_services.alert_rule_update(rule=rule, enabled=False, actor=actor_from_request(request))


class ChannelForm(_ServiceErrorsForm):
    secret = forms.CharField(
        required=False, widget=forms.PasswordInput(render_value=False), help_text="Empty: keep (or generate) it."
    )

    class Meta:
        model = NotificationChannel
        fields = list(alert_services.CHANNEL_FIELDS)

    def service_errors(self, instance: NotificationChannel) -> dict[str, list[str]]:
        return alert_services.notification_channel_errors(instance)


@admin.register(NotificationChannel)
class NotificationChannelAdmin(admin.ModelAdmin):
    """Channels; the URL is checked by the egress guard (purpose notification); the secret is never shown."""

    form = ChannelForm
    list_display = ["name", "kind", "target", "group_by", "enabled"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name"]

    @admin.display(description="target")
    def target(self, obj: NotificationChannel) -> str:
        return masked_url(obj.url) or ", ".join(obj.recipients or [])[:80]

    def save_model(self, request: HttpRequest, obj: NotificationChannel, form: Any, change: bool) -> None:
        fields = {name: form.cleaned_data[name] for name in alert_services.CHANNEL_FIELDS if name in form.cleaned_data}
        if not fields.get("secret"):
            fields.pop("secret", None)  # an empty password field keeps the stored secret
        actor = actor_from_request(request)
        if change:
            saved = alert_services.notification_channel_update(channel=obj, actor=actor, **fields)
        else:
            saved = alert_services.notification_channel_create(actor=actor, **fields)
        obj.pk = saved.pk
        obj.refresh_from_db()

    def delete_model(self, request: HttpRequest, obj: NotificationChannel) -> None:
        alert_services.notification_channel_delete(channel=obj, actor=actor_from_request(request))


class SilenceForm(_ServiceErrorsForm):
    class Meta:
        model = Silence
        fields = ["matchers", "starts_at", "ends_at", "author", "comment"]

    def service_errors(self, instance: Silence) -> dict[str, list[str]]:
        return silence_services.silence_errors(instance)


@admin.register(Silence)
class SilenceAdmin(admin.ModelAdmin):
    """Silences (matchers, start, end, author, comment); the expire action ends them now."""

    form = SilenceForm
    list_display = ["id", "matchers", "starts_at", "ends_at", "state", "author", "comment"]
    search_fields = ["author", "comment"]
    actions = ["expire"]

    @admin.display(description="state")
    def state(self, obj: Silence) -> str:
        return silence_services.silence_state(obj)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        return {"author": request.user.get_username(), "starts_at": timezone.now()}

    def save_model(self, request: HttpRequest, obj: Silence, form: Any, change: bool) -> None:
        data = form.cleaned_data
        actor = actor_from_request(request)
        if change:
            fields = {k: data[k] for k in ("matchers", "starts_at", "ends_at", "comment")}
            saved = silence_services.silence_update(silence=obj, actor=actor, **fields)
        else:
            saved = silence_services.silence_create(
                matchers=data["matchers"],
                starts_at=data["starts_at"],
                ends_at=data["ends_at"],
                comment=data["comment"],
                author=data.get("author") or "",
                actor=actor,
            )
        obj.pk = saved.pk
        obj.refresh_from_db()

    @admin.action(description="Expire the selected silences now")
    def expire(self, request: HttpRequest, queryset: QuerySet[Silence]) -> None:
        try:
            for silence in queryset:
                silence_services.silence_expire(silence=silence, actor=actor_from_request(request))
        except ValidationError as exc:
            self.message_user(request, "; ".join(exc.messages), messages.ERROR)


class AlertTransitionInline(admin.TabularInline):
    model = AlertTransition
    extra = 0
    can_delete = False
    fields = ["created_at", "from_status", "to_status", "value", "flapping"]
    readonly_fields = fields
    ordering = ["-created_at"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AlertState)
class AlertStateAdmin(admin.ModelAdmin):
    """Alerts as evaluated (read-only): status, flapping, value and their transitions."""

    list_display = ["rule", "target_key", "status", "flapping", "value", "firing_since", "last_evaluated_at"]
    list_filter = ["status", "flapping", "rule__severity"]
    search_fields = ["rule__name", "target_key"]
    list_select_related = ["rule"]
    inlines = [AlertTransitionInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    """The notification outbox (read-only): what was sent to which channel, attempts and last error."""

    list_display = [
        "id",
        "channel",
        "alert_status",
        "status",
        "attempts",
        "last_status_code",
        "created_at",
        "delivered_at",
    ]
    list_filter = ["status", "alert_status", "channel__kind"]
    list_select_related = ["channel"]
    readonly_fields = [
        "channel",
        "group",
        "alert_status",
        "payload",
        "status",
        "attempts",
        "next_attempt_at",
        "last_status_code",
        "last_error",
        "created_at",
        "delivered_at",
    ]
    exclude = ["claimed_until"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
