from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    """Metric history and roll-ups, uptime, maintenance windows, alerting, dashboard and status page."""

    name = "monitoring"
    verbose_name = "Monitoring"
    default_auto_field = "django.db.models.BigAutoField"
