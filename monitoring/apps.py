from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    """Metric history and roll-ups, uptime, maintenance windows, alerting, dashboard and status page."""

    name = "monitoring"
    verbose_name = "Monitoring"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from controlplane.observability.requestmetrics import set_flusher
        from controlplane.schedules import post_migrate_schedules
        from monitoring.services.requests import request_metrics_flush

        set_flusher(request_metrics_flush)
        from monitoring import live

        live.connect_signals()  # every process that stores events tells the dashboards' live hubs
        from monitoring.alerting import wiring

        wiring.connect(self)  # alerting: notification delivery kind, event trigger, /metrics gauges, beat
        post_migrate.connect(
            post_migrate_schedules(
                [
                    ("monitoring: roll-ups", "monitoring.tasks.rollup", 10),
                    ("monitoring: point retention", "monitoring.tasks.prune_points", 3600),
                ]
            ),
            sender=self,
            weak=False,
            dispatch_uid="monitoring-schedules",
        )
