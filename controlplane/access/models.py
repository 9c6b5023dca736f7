"""API keys: hashed (SHA-512 of a high-entropy secret), scoped, rate-limited, expirable, revocable."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from rest_framework_api_key.models import AbstractAPIKey

from controlplane.access.querysets import APIKeyManager


class APIKey(AbstractAPIKey):
    """A credential for services calling the API; only its prefix and hash are stored.

    Inherited: `id` (the prefix, see `APIKeyManager.assign_key`), `prefix`, `hashed_key`, `name`,
    `created`, `revoked`, `expiry_date`. Every write to a row invalidates every process's cached copy on
    commit (`querysets`, `signals`).
    """

    objects = APIKeyManager()

    scopes = models.JSONField(default=list, help_text="Scopes this key holds, e.g. registry:read.")
    rate = models.CharField(
        max_length=20, blank=True, help_text="Rate limit such as 600/m; blank uses RATELIMIT_DEFAULT."
    )
    namespaces = models.JSONField(
        default=list, blank=True, help_text="Config namespaces this key may see; empty means all."
    )
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"
        ordering = ["-created"]
        # Django's internal writes and related-object access go through the base manager: ours, so that
        # `APIKey._base_manager.filter(...).update(...)` invalidates like any other write.
        base_manager_name = "objects"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix})"

    @property
    def is_expired(self) -> bool:
        return self.expiry_date is not None and self.expiry_date <= timezone.now()

    @property
    def effective_rate(self) -> str:
        return self.rate or settings.RATELIMIT_DEFAULT

    def allows_namespace(self, namespace: str) -> bool:
        """Whether a namespace-restricted key may see `namespace` (unrestricted keys see all)."""
        return not self.namespaces or namespace in self.namespaces
