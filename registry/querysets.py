"""Querysets for the catalog: JSON-list membership that works on PostgreSQL and SQLite alike."""

from __future__ import annotations

from django.db import connection, models
from django.db.models import Count, Q
from django.db.models.expressions import RawSQL


def json_list_has(field: str, value: str, table: str) -> Q:
    """Rows whose JSON list `field` contains `value` (jsonb `@>` on PostgreSQL, `json_each` on SQLite)."""
    if connection.vendor == "postgresql":
        return Q(**{f"{field}__contains": [value]})
    sql = f'SELECT "{table}"."id" FROM "{table}", json_each("{table}"."{field}") WHERE json_each.value = %s'  # noqa: S608 - names are ours
    return Q(pk__in=RawSQL(sql, (value,)))  # noqa: S611 - value is a bound parameter


class ServiceQuerySet(models.QuerySet):
    """Service lookups and the per-status instance counts shown in lists."""

    def with_tag(self, tag: str) -> ServiceQuerySet:
        return self.filter(json_list_has("tags", tag, "registry_service"))

    def with_capability(self, capability: str) -> ServiceQuerySet:
        return self.filter(json_list_has("capabilities", capability, "registry_service"))

    def with_counts(self) -> ServiceQuerySet:
        """Annotate `instance_count` and `<status>_count` for every instance status."""
        from registry.models import InstanceStatus

        counts = {
            f"{status}_count": Count("instances", filter=Q(instances__status=status))
            for status in InstanceStatus.values
        }
        return self.annotate(instance_count=Count("instances"), **counts)

    def with_instance_status(self, status: str) -> ServiceQuerySet:
        """Services having at least one instance in `status`."""
        return self.filter(instances__status=status).distinct()


class InstanceQuerySet(models.QuerySet):
    """Instance lookups used by discovery."""

    def with_tag(self, tag: str) -> InstanceQuerySet:
        return self.filter(json_list_has("tags", tag, "registry_instance"))


class CheckQuerySet(models.QuerySet):
    """Check lookups used by the scheduler."""

    def probed(self) -> CheckQuerySet:
        """Enabled checks that a probe runs (not TTL, not in maintenance)."""
        return self.filter(enabled=True).exclude(kind="ttl")
