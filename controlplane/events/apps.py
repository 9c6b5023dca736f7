from django.apps import AppConfig


class EventsConfig(AppConfig):
    """Append-only event log and signed webhook deliveries."""

    name = "controlplane.events"
    label = "events"
    verbose_name = "Events and webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from controlplane.schedules import post_migrate_schedules

        post_migrate.connect(
            post_migrate_schedules(
                [
                    ("events: retention", "controlplane.events.tasks.events_prune", 3600),
                ]
            ),
            sender=self,
            weak=False,
            dispatch_uid="events-schedules",
        )
