from django.apps import AppConfig


class RegistryConfig(AppConfig):
    """Services, instances, health checks, probes and discovery."""

    name = "registry"
    verbose_name = "Service registry"
    default_auto_field = "django.db.models.BigAutoField"
