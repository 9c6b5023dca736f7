from django.apps import AppConfig


class AccessConfig(AppConfig):
    """API keys with scopes and rates; authentication, scope permission and rate limiting."""

    name = "controlplane.access"
    label = "access"
    verbose_name = "Access (API keys)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from controlplane.access import checks, signals  # noqa: F401 - registers the receivers and checks
