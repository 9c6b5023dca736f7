from django.apps import AppConfig


class ConfigstoreConfig(AppConfig):
    """Namespaces, validated entries, layered sources, revisions and watches."""

    name = "configstore"
    verbose_name = "Configuration"
    default_auto_field = "django.db.models.BigAutoField"
