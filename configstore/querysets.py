"""Query helpers for config entries."""

from __future__ import annotations

from django.db import models


class EntryQuerySet(models.QuerySet):
    """Entries with the filters the selectors share."""

    def active(self) -> EntryQuerySet:
        """Entries of the database layer and of enabled sources: the ones that take part in the effective config."""
        return self.filter(models.Q(source__isnull=True) | models.Q(source__enabled=True))

    def database_layer(self) -> EntryQuerySet:
        """Entries written by the admin and the API."""
        return self.filter(source__isnull=True)
