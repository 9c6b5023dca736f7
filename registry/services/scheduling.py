"""Claiming due checks and running them in batches.

A claim stamps a random token and a lease (`claimed_until`) on each check. The batch that holds the token
probes the checks and writes results only for rows still carrying its token, in one transaction that also
clears the claim and moves `next_run_at` on. A batch lost with its worker leaves rows whose lease lapses;
the next dispatcher tick claims them again under a new token, so nothing stays claimed and a late
straggler cannot write over the new claim.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from registry import conf
from registry.health import parse_expected_statuses
from registry.metrics import CHECKS_CLAIMED
from registry.models import Check, CheckKind
from registry.probes import ProbeSpec
from registry.runner import run_probes_sync
from registry.services.state import Outcome, check_outcomes_apply, locked_rows, next_slot

SPEC_FIELDS = (
    "id",
    "kind",
    "probe",
    "timeout",
    "method",
    "path",
    "headers",
    "expected_statuses",
    "body_contains",
    "store_body",
    "tls_verify",
    "follow_redirects",
    "warn_latency_ms",
    "params",
    "next_run_at",
    "instance__address",
    "instance__port",
    "instance__scheme",
)


@dataclass
class Claim:
    """Checks taken by one dispatcher tick: their ids and due times in due order, and the owning token."""

    token: str
    check_ids: list[int]
    due: list[datetime] = field(default_factory=list)

    def batches(self, *, size: int, window: float) -> list[tuple[list[int], datetime]]:
        """Split into batches of at most `size` checks due within `window` seconds of the batch's first.

        Each batch comes with its first due time, so it can be queued to start then rather than hold a
        worker slot while it waits for checks claimed ahead of time.
        """
        out: list[tuple[list[int], datetime]] = []
        for check_id, due in zip(self.check_ids, self.due or [timezone.now()] * len(self.check_ids), strict=True):
            if not out or len(out[-1][0]) >= size or (due - out[-1][1]).total_seconds() > window:
                out.append(([], due))
            out[-1][0].append(check_id)
        return out


def _unclaimed(now: datetime) -> Q:
    return Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)


@transaction.atomic
def checks_claim_due(
    *, limit: int | None = None, lookahead: float | None = None, lease: float | None = None, now: datetime | None = None
) -> Claim:
    """Claim up to `limit` enabled probed checks due within `lookahead` seconds.

    PostgreSQL: `SELECT ... FOR UPDATE SKIP LOCKED`, so concurrent dispatchers take disjoint rows.
    SQLite: a conditional UPDATE inside an IMMEDIATE transaction (the database-wide write lock).
    """
    now = now or timezone.now()
    limit = limit or conf.get("REGISTRY_DISPATCH_MAX_PER_TICK")
    horizon = now + timedelta(
        seconds=conf.get("REGISTRY_DISPATCH_LOOKAHEAD_SECONDS") if lookahead is None else lookahead
    )
    until = now + timedelta(seconds=lease or conf.get("REGISTRY_CLAIM_LEASE_SECONDS"))
    token = uuid.uuid4().hex
    due = Check.objects.probed().filter(next_run_at__lte=horizon).filter(_unclaimed(now)).order_by("next_run_at")
    if connection.vendor == "postgresql":
        rows = list(due.select_for_update(skip_locked=True).values_list("pk", "next_run_at")[:limit])
        Check.objects.filter(pk__in=[pk for pk, _ in rows]).update(claimed_until=until, claim_token=token)
    else:
        Check.objects.filter(pk__in=due.values("pk")[:limit]).filter(_unclaimed(now)).update(
            claimed_until=until, claim_token=token
        )
        rows = list(Check.objects.filter(claim_token=token).order_by("next_run_at").values_list("pk", "next_run_at"))
    CHECKS_CLAIMED.inc(len(rows))
    return Claim(token, [pk for pk, _ in rows], [due for _, due in rows])


def _spec(row: dict[str, Any]) -> ProbeSpec:
    kind = row["probe"] if row["kind"] == CheckKind.CUSTOM else row["kind"]
    return ProbeSpec(
        check_id=row["id"],
        kind=kind,
        address=row["instance__address"],
        port=row["instance__port"],
        scheme=row["instance__scheme"],
        timeout=row["timeout"],
        method=row["method"],
        path=row["path"],
        headers=row["headers"] or {},
        expected=parse_expected_statuses(row["expected_statuses"]),
        body_contains=row["body_contains"],
        store_body=row["store_body"],
        tls_verify=row["tls_verify"],
        follow_redirects=row["follow_redirects"],
        warn_latency_ms=row["warn_latency_ms"],
        params=row["params"] or {},
        due_at=row["next_run_at"].timestamp() if row["next_run_at"] else 0.0,
    )


def checks_run_batch(*, check_ids: list[int], token: str) -> int:
    """Probe the claimed checks concurrently, then write results and transitions in one transaction.

    Returns how many results were recorded (checks re-claimed by someone else meanwhile are skipped).
    """
    rows = list(Check.objects.filter(pk__in=check_ids, claim_token=token, enabled=True).values(*SPEC_FIELDS))
    if not rows:
        return 0
    specs = [_spec(row) for row in rows]
    results = run_probes_sync(
        specs,
        concurrency=conf.get("REGISTRY_BATCH_CONCURRENCY"),
        max_body_bytes=conf.get("REGISTRY_PROBE_MAX_BODY_BYTES"),
        max_redirects=conf.get("REGISTRY_PROBE_MAX_REDIRECTS"),
    )
    by_id = {spec.check_id: result for spec, result in zip(specs, results, strict=True)}
    now = timezone.now()
    with transaction.atomic():
        owned = locked_rows(Check.objects.filter(pk__in=list(by_id), claim_token=token))
        outcomes = [
            Outcome(row, by_id[row["id"]], next_slot(row["next_run_at"], row["interval"], now)) for row in owned
        ]
        check_outcomes_apply(outcomes=outcomes, now=now)
    return len(outcomes)


def check_run_now(*, check: Check) -> Check | None:
    """Probe one check immediately (API "run now"); None when a batch holds it at this moment."""
    from controlplane.errors import Conflict

    if check.kind == CheckKind.TTL:
        raise Conflict("A ttl check passes only by heartbeat; it cannot be run.")
    now = timezone.now()
    token = uuid.uuid4().hex
    with transaction.atomic():
        taken = (
            Check.objects.filter(pk=check.pk)
            .filter(_unclaimed(now))
            .update(claimed_until=now + timedelta(seconds=conf.get("REGISTRY_CLAIM_LEASE_SECONDS")), claim_token=token)
        )
    if not taken:
        return None
    # Run it as if due now, so its schedule restarts from this run.
    Check.objects.filter(pk=check.pk).update(next_run_at=now)
    checks_run_batch(check_ids=[check.pk], token=token)
    return Check.objects.get(pk=check.pk)
