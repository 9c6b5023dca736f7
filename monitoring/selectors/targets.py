"""Targets named the way operators name them, mapped to the series targets (registry ids) and back."""

from __future__ import annotations

from monitoring.models import SeriesKind

REGISTRY_KINDS = (SeriesKind.CHECK, SeriesKind.INSTANCE, SeriesKind.SERVICE)


class UnknownTarget(LookupError):
    """No such service, instance or check."""


def series_target(kind: str, name: str) -> str:
    """The series target for `name` of `kind`.

    service: `<service>`; instance: `<service>/<instance_id>`; check: `<service>/<instance_id>/<check>` or
    the check's id. Other kinds name their targets directly (a route `GET /api/v1/services/`, a
    pipeline slug, `<pipeline>/<step>`, a namespace, a delivery kind, a queue).
    """
    from registry.models import Check, Instance, Service

    if kind not in REGISTRY_KINDS:
        return name
    parts = name.split("/")
    pk = None
    if kind == SeriesKind.SERVICE and len(parts) == 1:
        pk = Service.objects.filter(name=name).values_list("pk", flat=True).first()
    elif kind == SeriesKind.INSTANCE and len(parts) == 2:
        pk = Instance.objects.filter(service__name=parts[0], instance_id=parts[1]).values_list("pk", flat=True).first()
    elif kind == SeriesKind.CHECK and len(parts) == 3:
        pk = (
            Check.objects.filter(instance__service__name=parts[0], instance__instance_id=parts[1], name=parts[2])
            .values_list("pk", flat=True)
            .first()
        )
    elif kind == SeriesKind.CHECK and name.isascii() and name.isdigit():  # "0³".isdigit(), then int() fails
        pk = Check.objects.filter(pk=int(name)).values_list("pk", flat=True).first()
    if pk is None:
        raise UnknownTarget(f"No {kind} {name!r}.")
    return str(pk)
