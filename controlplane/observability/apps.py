from django.apps import AppConfig


class ObservabilityConfig(AppConfig):
    """Health, readiness, metrics and tracing."""

    name = "controlplane.observability"
    label = "observability"
    default_auto_field = "django.db.models.BigAutoField"
