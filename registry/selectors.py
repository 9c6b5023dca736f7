"""Reads: service lists with health summaries, discovery, delivery targets, check history."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404

from registry.models import Check, CheckResult, Instance, InstanceStatus, Service

DISCOVERABLE_DEFAULT = (InstanceStatus.PASSING, InstanceStatus.WARNING)


def service_list(
    *,
    type: str | None = None,
    tag: str | None = None,
    capability: str | None = None,  # noqa: A002
    status: str | None = None,
    search: str | None = None,
) -> QuerySet[Service]:
    """Services matching the filters, each annotated with instance counts by status."""
    from django.db.models import Q

    queryset = Service.objects.all()
    if type:
        queryset = queryset.filter(type=type)
    if tag:
        queryset = queryset.with_tag(tag)
    if capability:
        queryset = queryset.with_capability(capability)
    if status:
        queryset = queryset.filter(pk__in=Instance.objects.filter(status=status).values("service_id"))
    if search:
        queryset = queryset.filter(
            Q(name__icontains=search)
            | Q(display_name__icontains=search)
            | Q(description__icontains=search)
            | Q(owner__icontains=search)
        )
    return queryset.with_counts().order_by("name")


def service_get(*, name: str) -> Service:
    """One service with counts and its instances (and their checks) prefetched; 404 when absent."""
    queryset = Service.objects.with_counts().prefetch_related(
        Prefetch("instances", queryset=Instance.objects.order_by("instance_id").prefetch_related("checks"))
    )
    return get_object_or_404(queryset, name=name)


def health_summary(service: Service) -> dict[str, int]:
    """Instance counts by status (from the `with_counts` annotation when present)."""
    return {status: getattr(service, f"{status}_count", 0) for status in InstanceStatus.values}


def instance_get(*, service_name: str, instance_id: str) -> Instance:
    return get_object_or_404(
        Instance.objects.select_related("service"), service__name=service_name, instance_id=instance_id
    )


def discover(
    *,
    service_name: str,
    statuses: tuple[str, ...] = DISCOVERABLE_DEFAULT,
    tags: list[str] | None = None,
    capability: str | None = None,
) -> list[Instance]:
    """Instances of a service in `statuses` carrying every tag in `tags`; 404 for an unknown service.

    `capability` is a service-level property: a service without it yields no instances.
    """
    service = get_object_or_404(Service, name=service_name)
    if capability and capability not in service.capabilities:
        return []
    queryset = Instance.objects.filter(service=service, status__in=statuses).select_related("service")
    for tag in tags or []:
        queryset = queryset.with_tag(tag)
    return list(queryset.order_by("instance_id"))


def service_indexes(*, names: list[str]) -> dict[str, tuple[int, int]]:
    """`{name: (service id, discovery index)}` for the services that exist (discovery watches)."""
    return {
        name: (pk, index or 0)
        for name, pk, index in Service.objects.filter(name__in=names).values_list(
            "name", "id", "discovery_index__value"
        )
    }


def discover_indexed(
    *,
    service_name: str,
    statuses: tuple[str, ...] = DISCOVERABLE_DEFAULT,
    tags: list[str] | None = None,
    capability: str | None = None,
) -> tuple[int, list[Instance]]:
    """`(registry index, instances)`: `discover` with the index it answers at; 404 for an unknown service.

    The index is read before the instances, so the instances are at least that new: a watcher that
    comes back with this index can only be told of a change again, never miss one.
    """
    row = Service.objects.filter(name=service_name).values_list("id", "discovery_index__value").first()
    if row is None:
        raise Http404(f"No service {service_name!r}.")
    return row[1] or 0, discover(service_name=service_name, statuses=statuses, tags=tags, capability=capability)


def instances_for_delivery(service_name: str) -> list[Instance]:
    """Passing instances of `service_name` (empty when the service is unknown); for pipeline deliveries."""
    return list(
        Instance.objects.filter(service__name=service_name, status=InstanceStatus.PASSING)
        .select_related("service")
        .order_by("instance_id")
    )


def check_get(*, check_id: int) -> Check:
    return get_object_or_404(Check.objects.select_related("instance__service"), pk=check_id)


def check_results(*, check: Check) -> QuerySet[CheckResult]:
    """A check's results, newest first."""
    return CheckResult.objects.filter(health_check=check).order_by("-created_at", "-id")
