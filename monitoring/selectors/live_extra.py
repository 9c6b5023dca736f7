"""What a live message carries beyond services and counts: instance and check statuses, and the top alerts.

Both are built once per tick for every open stream (monitoring/live.py `collect`), so they cost the same at
one viewer or five hundred: the statuses come from the tick's events (no query), the alerts from two bounded
queries. Only ids, names people already see on the page and allow-listed status words are sent: never an
event's other data (check output can quote internal hosts) nor an alert's labels or annotations.
"""

from __future__ import annotations

from typing import Any

from monitoring.models import AlertState, AlertStatus

ALERTS_PER_MESSAGE = 25  # one page of the alerts page; the overview shows the first 10
CHECK_EVENT = "check.status_changed"
INSTANCE_EVENT = "instance.status_changed"


def target_statuses(rows: list[dict[str, Any]], allowed: frozenset[str]) -> tuple[dict[str, str], dict[str, str]]:
    """(check id -> status, "service/instance" -> status) from the tick's events, the newest event winning.

    The event is written in the transaction that stores the status, so the newest one is the status now.
    """
    checks: dict[str, str] = {}
    instances: dict[str, str] = {}
    for row in rows:  # in id order: a later transition overwrites an earlier one of the same target
        data = row["data"] if isinstance(row["data"], dict) else {}
        new = data.get("new")
        if new not in allowed:
            continue
        if row["kind"] == CHECK_EVENT and isinstance(data.get("check_id"), int):
            checks[str(data["check_id"])] = new
        elif row["kind"] == INSTANCE_EVENT and row["subject"]:
            instances[row["subject"]] = new
    return checks, instances


def _alert_row(state: AlertState) -> dict[str, Any]:
    labels = state.labels if isinstance(state.labels, dict) else {}
    return {
        "id": state.pk,
        "status": state.status,
        "flapping": state.flapping,
        "rule": state.rule.name,
        "severity": state.rule.severity,
        "target": str(labels.get("target") or state.target_key),
        "service": str(labels.get("service") or ""),
        "value": state.value,
        "since": (state.firing_since or state.active_since).isoformat()
        if (state.firing_since or state.active_since)
        else "",
    }


def top_alerts(limit: int = ALERTS_PER_MESSAGE) -> dict[str, list[dict[str, Any]]]:
    """The newest firing and pending alerts, as the alerts page orders them (two queries)."""
    found = {}
    for status in (AlertStatus.FIRING, AlertStatus.PENDING):
        rows = AlertState.objects.filter(status=status).select_related("rule").order_by("-active_since", "-id")
        found[str(status)] = [_alert_row(state) for state in rows[:limit]]
    return found
