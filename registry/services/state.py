"""Writes of check state: probe results, TTL updates and expiry, instance aggregation, reaping, retention.

Everything that changes a check's status goes through `check_outcomes_apply`, which writes results and
state in bulk inside the caller's transaction and emits events only for real transitions.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import F, Q, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from controlplane.events.services import emit
from registry import conf
from registry.health import CRITICAL, CheckState, Thresholds, aggregate, apply_result, truncate_output
from registry.models import Check, CheckKind, CheckResult, CheckStatus, Instance
from registry.probes import ProbeResult
from registry.services.index import services_index_bump

STATE_FIELDS = (
    "status",
    "consecutive_successes",
    "consecutive_failures",
    "last_result_at",
    "last_latency_ms",
    "output",
    "status_changed_at",
    "next_run_at",
    "claimed_until",
    "claim_token",
)
ROW_FIELDS = (
    "id",
    "name",
    "kind",
    "interval",
    "ttl",
    "status",
    "consecutive_successes",
    "consecutive_failures",
    "successes_before_passing",
    "failures_before_warning",
    "failures_before_critical",
    "next_run_at",
    "status_changed_at",
    "instance_id",
)


@dataclass
class Outcome:
    """A result to apply to one check row; `direct` skips the anti-flap thresholds (TTL updates)."""

    row: dict[str, Any]
    result: ProbeResult
    next_run_at: datetime | None
    direct: bool = False


def locked_rows(queryset: Any, limit: int | None = None) -> list[dict[str, Any]]:
    """Check rows as dicts, row-locked on PostgreSQL, in id order (no joins: names are fetched on transitions)."""
    if connection.vendor == "postgresql":
        queryset = queryset.select_for_update(of=("self",))
    queryset = queryset.order_by("pk").values(*ROW_FIELDS)
    return list(queryset[:limit] if limit else queryset)


def next_slot(previous: datetime | None, interval: float, now: datetime) -> datetime:
    """The next due time: one interval after the slot just run, or after now when running behind."""
    step = timedelta(seconds=interval)
    if previous is not None and previous + step > now:
        return previous + step
    return now + step


def check_outcomes_apply(*, outcomes: list[Outcome], now: datetime | None = None, actor: str = "system") -> list[dict]:
    """Record results, advance state and schedules, emit transitions; returns the transitions.

    Must run inside `transaction.atomic`. One bulk insert for results, one bulk update for checks.
    """
    now = now or timezone.now()
    limit = conf.get("REGISTRY_OUTPUT_MAX_BYTES")
    results, transitions = [], []
    for outcome in outcomes:
        row, result = outcome.row, outcome.result
        output = truncate_output(result.output, limit)
        old = row["status"]
        if outcome.direct:
            failed = result.status == CRITICAL
            state = CheckState(
                result.status,
                0 if failed else row["consecutive_successes"] + 1,
                row["consecutive_failures"] + 1 if failed else 0,
            )
        else:
            thresholds = Thresholds(
                row["successes_before_passing"], row["failures_before_warning"], row["failures_before_critical"]
            )
            previous = CheckState(old, row["consecutive_successes"], row["consecutive_failures"])
            state = apply_result(previous, result.status, thresholds)
        row.update(
            status=state.status,
            consecutive_successes=state.successes,
            consecutive_failures=state.failures,
            last_result_at=now,
            last_latency_ms=result.latency_ms,
            output=output,
            next_run_at=outcome.next_run_at,
            claimed_until=None,
            claim_token="",
        )
        if state.status != old:
            row["status_changed_at"] = now
            transitions.append({**row, "old": old})
        results.append((row["id"], now, result.status, result.latency_ms, output))
    _insert_results(results)
    _bulk_update_checks([outcome.row for outcome in outcomes])
    names = {
        item["id"]: item
        for item in Check.objects.filter(pk__in=[row["id"] for row in transitions]).values(
            "id", "instance__instance_id", "instance__service__name"
        )
    }
    for row in transitions:
        row.update(names.get(row["id"], {}))
        emit(
            "check.status_changed",
            subject=f"{row['instance__service__name']}/{row['instance__instance_id']}/{row['name']}",
            data={
                "check_id": row["id"],
                "service": row["instance__service__name"],
                "instance_id": row["instance__instance_id"],
                "check": row["name"],
                "old": row["old"],
                "new": row["status"],
                "output": row["output"][:1024],
            },
            actor=actor,
        )
    if transitions:
        instances_refresh_status(instance_ids={row["instance_id"] for row in transitions}, now=now, actor=actor)
    return transitions


def _insert_results(results: list[tuple]) -> None:
    """Insert result rows `(check_id, time, status, latency_ms, output)`; one array-parameter INSERT on PostgreSQL."""
    if not results:
        return
    if connection.vendor != "postgresql":
        CheckResult.objects.bulk_create(
            [
                CheckResult(health_check_id=r[0], created_at=r[1], status=r[2], latency_ms=r[3], output=r[4])
                for r in results
            ],
            batch_size=500,
        )
        return
    columns = list(zip(*results, strict=True))
    with connection.cursor() as cursor:
        cursor.execute(
            f'INSERT INTO "{CheckResult._meta.db_table}" (health_check_id, created_at, status, latency_ms, output) '  # noqa: S608
            "SELECT * FROM unnest(%s::bigint[], %s::timestamptz[], %s::varchar[], %s::float8[], %s::text[])",
            [list(column) for column in columns],
        )


def _bulk_update_checks(rows: list[dict[str, Any]]) -> None:
    """Write the state fields of many checks in one statement (UPDATE ... FROM unnest(arrays) on PostgreSQL)."""
    if not rows:
        return
    if connection.vendor != "postgresql":
        objects = [Check(pk=row["id"], **{name: row[name] for name in STATE_FIELDS}) for row in rows]
        Check.objects.bulk_update(objects, STATE_FIELDS, batch_size=500)
        return
    types = {
        "status": "varchar",
        "consecutive_successes": "integer",
        "consecutive_failures": "integer",
        "last_result_at": "timestamptz",
        "last_latency_ms": "float8",
        "output": "text",
        "status_changed_at": "timestamptz",
        "next_run_at": "timestamptz",
        "claimed_until": "timestamptz",
        "claim_token": "varchar",
    }
    arrays = ", ".join(["%s::bigint[]", *(f"%s::{types[name]}[]" for name in STATE_FIELDS)])
    assignments = ", ".join(f'"{name}" = v."{name}"' for name in STATE_FIELDS)
    columns = ", ".join(["id", *(f'"{name}"' for name in STATE_FIELDS)])
    params = [[row["id"] for row in rows], *([row[name] for row in rows] for name in STATE_FIELDS)]
    with connection.cursor() as cursor:
        cursor.execute(
            f'UPDATE "{Check._meta.db_table}" AS c SET {assignments} FROM unnest({arrays}) AS v({columns}) '  # noqa: S608
            "WHERE c.id = v.id",
            params,
        )


def instances_refresh_status(*, instance_ids: set[int], now: datetime | None = None, actor: str = "system") -> None:
    """Recompute each instance's aggregate status; emit `instance.status_changed` on a real change.

    The instance rows are locked first (PostgreSQL) so two batches finishing at once for checks of the
    same instance aggregate one after the other, each seeing the other's committed check states.
    """
    if not instance_ids:
        return
    now = now or timezone.now()
    instances = Instance.objects.filter(pk__in=instance_ids).select_related("service").order_by("pk")
    if connection.vendor == "postgresql":
        instances = instances.select_for_update(of=("self",))
    instances = list(instances)
    statuses: dict[int, list[str]] = defaultdict(list)
    for instance_id, status in Check.objects.filter(instance_id__in=instance_ids, enabled=True).values_list(
        "instance_id", "status"
    ):
        statuses[instance_id].append(status)
    changed_services: set[int] = set()
    for instance in instances:
        new = aggregate(statuses[instance.pk], maintenance=instance.maintenance)
        old = instance.status
        if new == old:
            continue
        critical_since = instance.critical_since
        if new == CRITICAL and critical_since is None:
            critical_since = now
        elif new != CRITICAL:
            critical_since = None
        Instance.objects.filter(pk=instance.pk).update(status=new, critical_since=critical_since)
        instance.status, instance.critical_since = new, critical_since
        changed_services.add(instance.service_id)
        emit(
            "instance.status_changed",
            subject=f"{instance.service.name}/{instance.instance_id}",
            data={"service": instance.service.name, "instance_id": instance.instance_id, "old": old, "new": new},
            actor=actor,
        )
    # After the instance rows (locked above): discovery watchers wake on commit.
    services_index_bump(service_ids=changed_services)


@transaction.atomic
def check_ttl_update(
    *,
    instance: Instance,
    check_name: str | None = None,
    status: str = CheckStatus.PASSING,
    output: str = "",
    actor: str = "system",
) -> list[Check]:
    """Heartbeat: set the instance's TTL check(s) to `status` (passing by default) and restart their TTL.

    With no `check_name`, every TTL check of the instance is updated (Consul's TTL update, per instance).
    """
    queryset = Check.objects.filter(instance=instance, kind=CheckKind.TTL)
    if check_name:
        queryset = queryset.filter(name=check_name)
    rows = locked_rows(queryset)
    now = timezone.now()
    outcomes = [
        Outcome(
            row,
            ProbeResult(status, None, output or f"TTL {status} by heartbeat"),
            now + timedelta(seconds=row["ttl"]),
            direct=True,
        )
        for row in rows
    ]
    check_outcomes_apply(outcomes=outcomes, now=now, actor=actor)
    Instance.objects.filter(pk=instance.pk).update(last_seen_at=now)
    return list(Check.objects.filter(pk__in=[row["id"] for row in rows]))


@transaction.atomic
def ttl_checks_expire(*, now: datetime | None = None, limit: int = 5000) -> int:
    """Mark TTL checks whose TTL lapsed critical (and stop their clock until the next heartbeat)."""
    now = now or timezone.now()
    rows = locked_rows(Check.objects.filter(kind=CheckKind.TTL, enabled=True, next_run_at__lte=now), limit)
    outcomes = [
        Outcome(
            row, ProbeResult(CRITICAL, None, f"TTL expired: no heartbeat within {row['ttl']:g} s."), None, direct=True
        )
        for row in rows
    ]
    check_outcomes_apply(outcomes=outcomes, now=now)
    return len(rows)


def instances_reap_critical(*, now: datetime | None = None) -> int:
    """Deregister instances critical for longer than their `deregister_critical_after`; returns how many."""
    from registry.services.catalog import instance_deregister

    now = now or timezone.now()
    candidates = Instance.objects.filter(
        status=CRITICAL, maintenance=False, deregister_critical_after__isnull=False, critical_since__isnull=False
    ).select_related("service")
    reaped = 0
    for instance in candidates:
        if instance.critical_since + timedelta(seconds=instance.deregister_critical_after) <= now:
            instance_deregister(
                instance=instance, actor="system", reason="critical longer than deregister_critical_after"
            )
            reaped += 1
    return reaped


def check_results_prune(*, max_age_days: int | None = None, keep_per_check: int | None = None) -> int:
    """Apply result retention: drop results older than the age limit and beyond the per-check count."""
    days = max_age_days if max_age_days is not None else conf.get("REGISTRY_RESULT_RETENTION_DAYS")
    keep = keep_per_check if keep_per_check is not None else conf.get("REGISTRY_RESULT_RETENTION_PER_CHECK")
    deleted, _ = CheckResult.objects.filter(created_at__lt=timezone.now() - timedelta(days=days)).delete()
    ranked = CheckResult.objects.annotate(
        rank=Window(RowNumber(), partition_by=[F("health_check_id")], order_by=[F("created_at").desc(), F("id").desc()])
    ).filter(rank__gt=keep)
    while True:
        ids = list(ranked.values_list("id", flat=True)[:10000])
        if not ids:
            return deleted
        removed, _ = CheckResult.objects.filter(pk__in=ids).delete()
        deleted += removed


@transaction.atomic
def check_set_enabled(*, checks: Any, enabled: bool, actor: str = "system") -> int:
    """Enable or disable checks; enabling makes them due now. Instance status follows."""
    ids = list(checks.values_list("pk", flat=True))
    update: dict[str, Any] = {"enabled": enabled}
    if enabled:
        Check.objects.filter(pk__in=ids).exclude(kind=CheckKind.TTL).update(next_run_at=timezone.now())
    count = Check.objects.filter(pk__in=ids).update(**update)
    instance_ids = set(Check.objects.filter(pk__in=ids).values_list("instance_id", flat=True))
    instances_refresh_status(instance_ids=instance_ids, actor=actor)
    emit("check.updated", subject=f"{count} checks", data={"check_ids": ids, "enabled": enabled}, actor=actor)
    return count


@transaction.atomic
def check_mark_due(*, checks: Any) -> int:
    """Make probed checks due now (admin "run now"); the dispatcher picks them up on its next tick."""
    return checks.filter(Q(enabled=True) & ~Q(kind=CheckKind.TTL)).update(next_run_at=timezone.now())
