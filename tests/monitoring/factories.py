"""factory_boy factories for monitoring models, and a helper writing check results at given times."""

from __future__ import annotations

from datetime import datetime, timedelta

import factory

from monitoring.models import MaintenanceWindow
from registry.models import Check, CheckResult


class MaintenanceWindowFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MaintenanceWindow

    name = factory.Sequence(lambda n: f"window-{n}")
    scope = "everything"
    kind = "one_off"
    timezone = "UTC"


def write_results(
    check: Check, start: datetime, count: int, *, every: float = 10, status: str = "passing", latency: float = 20
) -> list[CheckResult]:
    """`count` results of `check` from `start`, one every `every` seconds (bulk, as the registry writes them)."""
    rows = [
        CheckResult(
            health_check=check,
            created_at=start + timedelta(seconds=i * every),
            status=status,
            latency_ms=latency,
        )
        for i in range(count)
    ]
    return CheckResult.objects.bulk_create(rows)
