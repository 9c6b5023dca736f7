from django.apps import AppConfig


class RegistryConfig(AppConfig):
    """Services, instances, health checks, probes and discovery."""

    name = "registry"
    verbose_name = "Service registry"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from controlplane.observability.metrics import register_scrape_collector
        from controlplane.schedules import post_migrate_schedules
        from registry.metrics import ChecksByStatusCollector

        register_scrape_collector(ChecksByStatusCollector())
        post_migrate.connect(
            post_migrate_schedules(
                [
                    ("registry: dispatch due checks", "registry.tasks.dispatch_due_checks", 1),
                    ("registry: deregister long-critical instances", "registry.tasks.reap_critical_instances", 15),
                    ("registry: check result retention", "registry.tasks.prune_check_results", 3600),
                ]
            ),
            sender=self,
            weak=False,
            dispatch_uid="registry-schedules",
        )
