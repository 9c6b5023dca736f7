"""The API's scopes. `admin` implies every other scope."""

from __future__ import annotations

from django.db import models


class Scope(models.TextChoices):
    """A permission an API key can hold; every API route names the scope it needs."""

    REGISTRY_READ = "registry:read"
    REGISTRY_WRITE = "registry:write"
    CONFIG_READ = "config:read"
    CONFIG_WRITE = "config:write"
    CONFIG_SECRETS = "config:secrets"
    PIPELINES_READ = "pipelines:read"
    PIPELINES_WRITE = "pipelines:write"
    PIPELINES_RUN = "pipelines:run"
    EVENTS_READ = "events:read"
    MONITORING_READ = "monitoring:read"
    MONITORING_WRITE = "monitoring:write"
    ADMIN = "admin"


ALL_SCOPES: tuple[str, ...] = tuple(Scope.values)


def grants(held: list[str] | tuple[str, ...] | set[str], needed: str) -> bool:
    """True when a key holding `held` may use a route needing `needed`."""
    return needed in held or Scope.ADMIN in held
