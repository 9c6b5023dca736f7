from django.apps import AppConfig


class ConfigstoreConfig(AppConfig):
    """Namespaces, validated entries, layered sources, revisions and watches."""

    name = "configstore"
    verbose_name = "Configuration"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from configstore import conf
        from configstore.metrics import ConfigStoreCollector
        from controlplane.observability.metrics import register_scrape_collector
        from controlplane.schedules import post_migrate_schedules

        register_scrape_collector(ConfigStoreCollector())
        post_migrate.connect(
            post_migrate_schedules(
                [("config: reload sources", "configstore.tasks.reload_sources", conf.reload_every_seconds())]
            ),
            sender=self,
            weak=False,
            dispatch_uid="configstore-schedules",
        )
