"""Writes to the catalog: services, instance registration (with checks) and deregistration, maintenance."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from controlplane.egress import EgressDenied, Purpose, check_host, check_url
from registry.health import StatusSpecError, parse_expected_statuses
from registry.models import CHECK_CONFIG_FIELDS, Check, CheckKind, Instance, Service
from registry.probes import CUSTOM_PROBES, PROBE_KINDS
from registry.probes.http import http_check_errors
from registry.services.index import service_index_deleted, services_index_bump
from registry.services.state import instances_refresh_status

SERVICE_FIELDS = ("display_name", "type", "description", "owner", "tags", "capabilities", "metadata")


def _emit(kind: str, subject: str, data: dict[str, Any], actor: str) -> None:
    from controlplane.events.services import emit

    emit(kind, subject=subject, data=data, actor=actor)


def _clean(obj: Any, *, exclude: list[str] | None = None) -> dict[str, list[str]]:
    try:
        obj.full_clean(exclude=exclude, validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        return {name: list(messages) for name, messages in exc.message_dict.items()}
    return {}


@transaction.atomic
def service_create(
    *,
    name: str,
    type: str = "other",  # noqa: A002 - the API field is called type
    display_name: str = "",
    description: str = "",
    owner: str = "",
    tags: list[str] | None = None,
    capabilities: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    actor: str = "system",
) -> Service:
    """Create a service (`service.created`)."""
    service = Service(
        name=name,
        type=type,
        display_name=display_name,
        description=description,
        owner=owner,
        tags=tags if tags is not None else [],
        capabilities=capabilities if capabilities is not None else [],
        metadata=metadata if metadata is not None else {},
    )
    service.full_clean()
    service.save()
    _emit("service.created", name, {"name": name, "type": service.type}, actor)
    return service


@transaction.atomic
def service_update(*, service: Service, actor: str = "system", **fields: Any) -> Service:
    """Change a service's descriptive fields (`service.updated`); the name is permanent."""
    unknown = set(fields) - set(SERVICE_FIELDS)
    if unknown:
        raise ValidationError({name: ["This field cannot be changed."] for name in sorted(unknown)})
    for name, value in fields.items():
        setattr(service, name, value)
    service.full_clean()
    service.save()
    if "capabilities" in fields:  # `?capability=` filters discovery by it
        services_index_bump(service_ids=[service.pk])
    _emit("service.updated", service.name, {"fields": sorted(fields)}, actor)
    return service


@transaction.atomic
def service_delete(*, service: Service, actor: str = "system") -> None:
    """Delete a service with its instances and checks (`service.deleted`)."""
    name = service.name
    service_index_deleted(service_id=service.pk, name=name)
    service.delete()
    _emit("service.deleted", name, {"name": name}, actor)


def _validate_check(index: int, spec: dict[str, Any], address: str) -> tuple[Check, dict[str, list[str]]]:
    """Build an unsaved check from an API-shaped dict and collect its field errors (prefixed later)."""
    errors: dict[str, list[str]] = {}
    unknown = set(spec) - set(CHECK_CONFIG_FIELDS) - {"name"}
    for name in sorted(unknown):
        errors[name] = ["Unknown field."]
    values = {name: spec[name] for name in CHECK_CONFIG_FIELDS if name in spec and spec[name] is not None}
    if isinstance(values.get("method"), str):
        values["method"] = values["method"].upper()
    check = Check(name=spec.get("name") or "", **values)
    for name, messages in _clean(check, exclude=["instance"]).items():
        errors.setdefault(name, []).extend(messages)
    kind = check.kind
    if kind == CheckKind.HTTP:
        for name, messages in http_check_errors(check.method, check.headers).items():
            errors.setdefault(name, []).extend(messages)
        try:
            parse_expected_statuses(check.expected_statuses)
        except StatusSpecError as exc:
            errors.setdefault("expected_statuses", []).append(str(exc))
        if any(ord(ch) <= 32 or ord(ch) == 127 for ch in check.path):
            # Spaces and control characters would let a path smuggle a request line or header.
            errors.setdefault("path", []).append("The path must not contain spaces or control characters.")
        elif check.path.startswith(("http://", "https://")):
            try:
                check_url(check.path, purpose=Purpose.PROBE)
            except EgressDenied as exc:
                errors.setdefault("path", []).append(str(exc))
        elif not check.path.startswith("/"):
            errors.setdefault("path", []).append("Give a path starting with / or a full http(s) URL.")
    if kind == CheckKind.CUSTOM:
        if check.probe not in CUSTOM_PROBES:
            errors.setdefault("probe", []).append(f"Unknown probe; choose one of {', '.join(CUSTOM_PROBES)}.")
        elif isinstance(check.params, dict):
            for name, messages in PROBE_KINDS[check.probe].validate_params(check.params).items():
                errors.setdefault(name, []).extend(messages)
    if kind in (CheckKind.TCP, CheckKind.CUSTOM) and isinstance(check.params, dict):
        host = check.params.get("host")
        if host is not None:
            try:
                check_host(str(host), purpose=Purpose.PROBE)
            except EgressDenied as exc:
                errors.setdefault("params.host", []).append(str(exc))
        port = check.params.get("port")
        if port is not None and (not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535):
            errors.setdefault("params.port", []).append("Give a port between 1 and 65535.")
    if kind != CheckKind.TTL and not (kind == CheckKind.HTTP and check.path.startswith(("http://", "https://"))):
        if not (kind in (CheckKind.TCP, CheckKind.CUSTOM) and check.params.get("host")):
            try:
                check_host(address, purpose=Purpose.PROBE)
            except EgressDenied as exc:
                errors.setdefault("address", []).append(f"Check {check.name or index} targets a denied address: {exc}")
    return check, errors


def _validate_registration(
    instance: Instance, checks: list[dict[str, Any]]
) -> tuple[list[Check], dict[str, list[str]]]:
    errors = _clean(instance, exclude=["service"])
    built: list[Check] = []
    seen: set[str] = set()
    if not isinstance(checks, list):
        return [], {**errors, "checks": ["Give a list of checks."]}
    for index, spec in enumerate(checks):
        if not isinstance(spec, dict):
            errors[f"checks.{index}"] = ["Give an object."]
            continue
        check, check_errors = _validate_check(index, spec, instance.address)
        if check.name in seen:
            check_errors.setdefault("name", []).append("Check names must be unique within an instance.")
        seen.add(check.name)
        for name, messages in check_errors.items():
            key = name if name == "address" else f"checks.{index}.{name}"
            errors.setdefault(key, []).extend(messages)
        built.append(check)
    return built, errors


def _apply_instance_fields(
    instance: Instance,
    address: str,
    port: int,
    scheme: str,
    tags: list[str] | None,
    metadata: dict[str, Any] | None,
    deregister_critical_after: int | None,
) -> None:
    instance.address, instance.port, instance.scheme = address, port, scheme
    instance.tags = tags if tags is not None else []
    instance.metadata = metadata if metadata is not None else {}
    instance.deregister_critical_after = deregister_critical_after


def _discovered_fields(instance: Instance) -> tuple[Any, ...]:
    """What a discovery answer shows of an instance (status changes bump through the aggregation)."""
    return (instance.address, instance.port, instance.scheme, list(instance.tags), dict(instance.metadata))


def _instance_locked(service: Service, instance_id: str) -> Instance | None:
    """The registered instance with its checks and itself locked, or None when there is none yet."""
    existing = Instance.objects.filter(service=service, instance_id=instance_id).values_list("pk", flat=True).first()
    if existing is None:
        return None
    # Lock in the order result writes use (checks, then the instance), so the two cannot deadlock.
    list(Check.objects.select_for_update().filter(instance_id=existing).order_by("pk").values_list("pk", flat=True))
    return Instance.objects.select_for_update().filter(pk=existing).first()


@transaction.atomic
def instance_register(
    *,
    service: Service,
    instance_id: str,
    address: str,
    port: int,
    scheme: str = "http",
    tags: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    checks: list[dict[str, Any]] | None = None,
    deregister_critical_after: int | None = None,
    actor: str = "system",
) -> tuple[Instance, bool]:
    """Register or update (upsert by `instance_id`) an instance together with its checks, atomically.

    Checks are matched by name: existing ones keep their state and history, missing ones are removed,
    new ones are due at once. Returns the instance and whether it was created (`instance.registered`).
    """
    candidate = Instance(service=service, instance_id=instance_id)
    _apply_instance_fields(candidate, address, port, scheme, tags, metadata, deregister_critical_after)
    built, errors = _validate_registration(candidate, checks or [])
    if errors:
        raise ValidationError(errors)
    now = timezone.now()
    existing = _instance_locked(service, instance_id)
    if existing is None:
        candidate.last_seen_at = now
        try:
            # A savepoint: when a concurrent first registration of the same id wins the insert, this one
            # waits for it on the unique index, then continues as an update of the row it committed.
            with transaction.atomic():
                candidate.save(force_insert=True)
        except IntegrityError:
            existing = _instance_locked(service, instance_id)
            if existing is None:  # not the unique (service, instance_id) race: a real error
                raise
    instance = existing or candidate
    seen = _discovered_fields(existing) if existing is not None else None
    if existing is not None:
        _apply_instance_fields(existing, address, port, scheme, tags, metadata, deregister_critical_after)
        existing.last_seen_at = now
        existing.save()
    current = {check.name: check for check in instance.checks.all()} if existing else {}
    Check.objects.filter(instance=instance).exclude(name__in=[c.name for c in built]).delete()
    for check in built:
        target = current.get(check.name)
        if target is None:
            check.instance = instance
            check.next_run_at = now + timezone.timedelta(seconds=check.ttl) if check.kind == CheckKind.TTL else now
            check.save()
            continue
        changed = [name for name in CHECK_CONFIG_FIELDS if getattr(target, name) != getattr(check, name)]
        if changed:
            for name in changed:
                setattr(target, name, getattr(check, name))
            if target.kind != CheckKind.TTL:
                target.next_run_at = now
            elif target.next_run_at is None and "ttl" in changed:
                target.next_run_at = now + timezone.timedelta(seconds=target.ttl or 0)
            target.save()
    if existing is None:
        # A new instance starts at its computed aggregate without a status_changed event.
        from registry.health import aggregate

        instance.status = aggregate([c.status for c in built if c.enabled], maintenance=instance.maintenance)
        instance.save(update_fields=["status"])
    else:
        instances_refresh_status(instance_ids={instance.pk}, now=now, actor=actor)
    if seen is None or seen != _discovered_fields(instance):  # a heartbeat-like re-registration changes nothing
        services_index_bump(service_ids=[service.pk])
    _emit(
        "instance.registered",
        f"{service.name}/{instance_id}",
        {
            "service": service.name,
            "instance_id": instance_id,
            "address": address,
            "port": port,
            "scheme": scheme,
            "checks": [check.name for check in built],
            "created": existing is None,
        },
        actor,
    )
    instance.refresh_from_db()
    return instance, existing is None


@transaction.atomic
def instance_deregister(*, instance: Instance, actor: str = "system", reason: str = "") -> None:
    """Remove an instance with its checks and history (`instance.deregistered`)."""
    service_name, instance_id = instance.service.name, instance.instance_id
    service_id = instance.service_id
    instance.delete()
    services_index_bump(service_ids=[service_id])
    _emit(
        "instance.deregistered",
        f"{service_name}/{instance_id}",
        {"service": service_name, "instance_id": instance_id, "reason": reason or "deregistered"},
        actor,
    )


@transaction.atomic
def instance_set_maintenance(*, instance: Instance, enabled: bool, reason: str = "", actor: str = "system") -> Instance:
    """Put an instance in (or take it out of) maintenance; its status follows."""
    locked = Instance.objects.select_for_update().get(pk=instance.pk)
    locked.maintenance = enabled
    locked.maintenance_reason = reason[:500] if enabled else ""
    locked.save(update_fields=["maintenance", "maintenance_reason"])
    instances_refresh_status(instance_ids={locked.pk}, actor=actor)
    locked.refresh_from_db()
    return locked
