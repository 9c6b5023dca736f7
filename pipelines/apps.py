from django.apps import AppConfig


class PipelinesConfig(AppConfig):
    """Pipelines of steps, the compiled executor, runs and metrics."""

    name = "pipelines"
    verbose_name = "Pipelines"
    default_auto_field = "django.db.models.BigAutoField"
