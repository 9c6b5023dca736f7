from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    """The shared outbound delivery engine (no tables of its own: each kind's model holds its rows)."""

    name = "controlplane.delivery"
    label = "delivery"
    verbose_name = "Outbound deliveries"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from controlplane.delivery.schedules import sweep_schedule

        post_migrate.connect(sweep_schedule, sender=self, weak=False, dispatch_uid="delivery-schedules")
