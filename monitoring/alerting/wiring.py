"""Alerting's start-up wiring (called from `MonitoringConfig.ready`)."""

from __future__ import annotations

from django.apps import AppConfig

SCHEDULES = [
    ("monitoring: alert evaluation", "monitoring.tasks.alerts_evaluate", 5),
    ("monitoring: alert history retention", "monitoring.tasks.alerts_prune", 3600),
]


def connect(app: AppConfig) -> None:
    """Register the notification kind with the delivery engine, the event trigger, /metrics and beat, and
    the receiver counting rejected config writes."""
    from django.db.models.signals import post_migrate, post_save

    from controlplane.delivery.kinds import DELIVERY_KINDS
    from controlplane.observability.metrics import register_scrape_collector
    from controlplane.schedules import post_migrate_schedules
    from monitoring.alerting.collector import COLLECTOR
    from monitoring.alerting.triggers import event_saved
    from monitoring.sources import namespaces

    # The engine's registry is a plain dict: the platform names no app of its own accord (monitoring
    # imports controlplane, never the reverse).
    DELIVERY_KINDS["notification"] = "monitoring.Notification"
    post_save.connect(event_saved, sender="events.Event", dispatch_uid="monitoring-alert-trigger")
    register_scrape_collector(COLLECTOR)
    # Not alerting's, but this is monitoring's one start-up hook outside apps.py (owned elsewhere).
    namespaces.connect()
    post_migrate.connect(
        post_migrate_schedules(SCHEDULES), sender=app, weak=False, dispatch_uid="monitoring-alert-schedules"
    )
