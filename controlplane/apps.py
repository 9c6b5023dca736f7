"""App config for the project package itself (management commands, shared templates)."""

from django.apps import AppConfig


class ControlplaneConfig(AppConfig):
    """Registers the project package so its management commands and signal hooks load."""

    name = "controlplane"
    verbose_name = "Control plane"

    def ready(self) -> None:
        from controlplane import strictjson
        from controlplane.observability import celery_hooks  # noqa: F401  (connects Celery signals)

        strictjson.install()  # API bodies keep their JSON types (the OpenAPI document promises them)
        from controlplane.inputs import install_form_guards

        install_form_guards()  # admin JSON inputs refuse NUL with a field error (the input boundary)
