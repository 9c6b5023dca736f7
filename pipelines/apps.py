from django.apps import AppConfig


class PipelinesConfig(AppConfig):
    """Pipelines of steps, the compiled executor, runs and metrics."""

    name = "pipelines"
    verbose_name = "Pipelines"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        import atexit

        from django.db.models.signals import post_migrate

        from controlplane.schedules import post_migrate_schedules
        from pipelines.enrichment import on_config_changed
        from pipelines.stats import stats_flush_quietly

        post_migrate.connect(
            post_migrate_schedules(
                [
                    ("pipelines: prune runs", "pipelines.runs_prune", 3600),
                    ("pipelines: recover lost async runs", "pipelines.runs_recover", 30),
                ]
            ),
            sender=self,
            weak=False,
            dispatch_uid="pipelines-schedules",
        )
        try:
            from configstore.signals import config_changed
        except ImportError:  # the config store is optional for the executor itself
            pass
        else:
            config_changed.connect(on_config_changed, weak=False, dispatch_uid="pipelines-enrich-cache")
        atexit.register(stats_flush_quietly, force=True)

        from controlplane.observability.metrics import register_scrape_collector
        from pipelines.metrics import STEP_STATS_COLLECTOR

        register_scrape_collector(STEP_STATS_COLLECTOR)
