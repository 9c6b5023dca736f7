"""Liveness marks written by long-running components and read by /readyz."""

from django.db import models


class Heartbeat(models.Model):
    """The last time a component (such as `beat`) proved it was alive; shared across processes."""

    component = models.CharField(max_length=50, unique=True)
    seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.component} @ {self.seen_at:%H:%M:%S}"
