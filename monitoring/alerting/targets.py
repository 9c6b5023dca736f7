"""What a rule watches: its targets, each with a stable key, its labels and where its values are read.

Target keys (also read by the dashboard): `service:<pk>`, `service:<pk>/instance:<pk>`,
`service:<pk>/instance:<pk>/check:<pk>`, `pipeline:<slug>`, `route:<METHOD pattern>`, `namespace:<name>`,
`system`. A rule of target kind `labels` watches every instance whose service or instance matches all of
`match_labels`: `service`, `type`, `instance`, `tag` (one of the tags) or any metadata key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from registry.health import SEVERITY

if TYPE_CHECKING:
    from monitoring.models import AlertRule

# Numeric reading of a status for threshold rules: passing 0, warning/unknown 1, critical 2.
STATUS_VALUE = {"passing": 0.0, "unknown": 1.0, "warning": 1.0, "critical": 2.0}


@dataclass
class Target:
    """One watched thing: `series` = (series kind, series target) for values read from the metric store."""

    key: str
    labels: dict[str, str]
    series: tuple[str, str] | None = None
    status: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _worst(statuses: list[str]) -> str | None:
    live = [s for s in statuses if s != "maintenance"]
    if not live:
        return "maintenance" if statuses else None
    return max(live, key=lambda status: SEVERITY.get(status, SEVERITY["unknown"]))


def _instance_targets(rows: list[dict[str, Any]]) -> list[Target]:
    return [
        Target(
            key=f"service:{row['service_id']}/instance:{row['id']}",
            labels={
                "target_kind": "instance",
                "target": f"{row['service__name']}/{row['instance_id']}",
                "service": row["service__name"],
                "instance": row["instance_id"],
            },
            series=("instance", str(row["id"])),
            status=row["status"],
        )
        for row in rows
    ]


INSTANCE_FIELDS = ("id", "instance_id", "status", "service_id", "service__name")


def _label_match(match: dict[str, str], service: dict[str, Any], instance: dict[str, Any]) -> bool:
    for name, wanted in match.items():
        if name == "service":
            ok = service["name"] == wanted
        elif name == "type":
            ok = service["type"] == wanted
        elif name == "instance":
            ok = instance["instance_id"] == wanted
        elif name == "tag":
            ok = wanted in (instance["tags"] or []) or wanted in (service["tags"] or [])
        else:
            meta = {**(service["metadata"] or {}), **(instance["metadata"] or {})}
            ok = name in meta and str(meta[name]) == str(wanted)
        if not ok:
            return False
    return True


def rule_targets(rule: AlertRule) -> list[Target]:
    """Every target of `rule` as it stands now (a target that no longer exists is simply absent)."""
    from registry.models import Check, Instance, Service

    kind, ref = rule.target_kind, rule.target
    if kind == "service":
        service = Service.objects.filter(name=ref).values("id", "name").first()
        if service is None:
            return []
        statuses = list(Instance.objects.filter(service_id=service["id"]).values_list("status", flat=True))
        return [
            Target(
                key=f"service:{service['id']}",
                labels={"target_kind": "service", "target": service["name"], "service": service["name"]},
                series=("service", str(service["id"])),
                status=_worst(statuses),
            )
        ]
    if kind == "instance":
        service_name, _, instance_id = ref.partition("/")
        rows = Instance.objects.filter(service__name=service_name, instance_id=instance_id).values(*INSTANCE_FIELDS)
        return _instance_targets(list(rows))
    if kind == "check":
        checks = Check.objects.all()
        if ref.isdigit():
            checks = checks.filter(pk=int(ref))
        else:
            service_name, instance_id, check_name = (ref.split("/", 2) + ["", ""])[:3]
            checks = checks.filter(
                instance__service__name=service_name, instance__instance_id=instance_id, name=check_name
            )
        return [
            Target(
                key=f"service:{row['instance__service_id']}/instance:{row['instance_id']}/check:{row['id']}",
                labels={
                    "target_kind": "check",
                    "target": f"{row['instance__service__name']}/{row['instance__instance_id']}/{row['name']}",
                    "service": row["instance__service__name"],
                    "instance": row["instance__instance_id"],
                    "check": row["name"],
                },
                series=("check", str(row["id"])),
                status=row["status"] if row["enabled"] else None,
            )
            for row in checks.values(
                "id",
                "name",
                "status",
                "enabled",
                "instance_id",
                "instance__instance_id",
                "instance__service_id",
                "instance__service__name",
            )
        ]
    if kind == "labels":
        match = {str(k): str(v) for k, v in (rule.match_labels or {}).items()}
        services = {row["id"]: row for row in Service.objects.values("id", "name", "type", "tags", "metadata")}
        rows = []
        for row in Instance.objects.values(*INSTANCE_FIELDS, "tags", "metadata"):
            service = services.get(row["service_id"])
            if service is not None and _label_match(match, service, row):
                rows.append(row)
        return _instance_targets(rows)
    if kind == "pipeline":
        return [
            Target(
                key=f"pipeline:{ref}",
                labels={"target_kind": "pipeline", "target": ref, "pipeline": ref},
                series=("pipeline", ref),
            )
        ]
    if kind == "route":
        return [
            Target(
                key=f"route:{ref}", labels={"target_kind": "route", "target": ref, "route": ref}, series=("route", ref)
            )
        ]
    if kind == "namespace":
        return [
            Target(
                key=f"namespace:{ref}",
                labels={"target_kind": "namespace", "target": ref, "namespace": ref},
                series=("namespace", ref),
            )
        ]
    # The whole system; for queue_lag `target` may name one Celery queue.
    key = f"system:{ref}" if ref else "system"
    return [Target(key=key, labels={"target_kind": "system", "target": ref or "system"}, extra={"queue": ref})]
