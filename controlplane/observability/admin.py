from django.contrib import admin

from controlplane.observability.models import Heartbeat


@admin.register(Heartbeat)
class HeartbeatAdmin(admin.ModelAdmin):
    """Component heartbeats (beat) as last seen."""

    list_display = ["component", "seen_at"]
    readonly_fields = ["component", "seen_at"]
