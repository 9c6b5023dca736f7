"""The alert state machine (Prometheus semantics) and flap detection. Pure: no queries, no I/O.

inactive -> pending when the condition holds (straight to firing when `for` is 0); pending -> firing once
it has held for `for`; pending -> inactive when it stops holding first; firing -> resolved when it stops
holding (after `keep_firing_for`, if set); resolved -> pending (or firing) when it holds again.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monitoring.models import AlertRule, AlertState

COMPARE: dict[str, Callable[[float, float], bool]] = {
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
    "eq": operator.eq,
    "ne": operator.ne,
}


def condition_holds(rule: AlertRule, value: float | None) -> bool:
    """Whether `value` meets the rule's comparison with its threshold (no value never does)."""
    return value is not None and COMPARE[rule.comparison](value, rule.threshold)


@dataclass(frozen=True)
class Change:
    """One state change of one alert."""

    old: str
    new: str


def advance(alert: AlertState, rule: AlertRule, *, holds: bool, value: float | None, now: datetime) -> Change | None:
    """Move `alert` (in memory) for one evaluation; returns the change, or None when the status stays."""
    old = alert.status
    alert.value = value
    alert.last_evaluated_at = now
    if holds:
        alert.keep_firing_until = None
        if old in ("inactive", "resolved"):
            alert.active_since = now
            alert.resolved_at = None
            new = "pending" if rule.for_seconds else "firing"
        elif old == "pending" and now - alert.active_since >= timedelta(seconds=rule.for_seconds):
            new = "firing"
        else:
            new = old
        if new == "firing" and old != "firing":
            alert.firing_since = now
    else:
        if old == "pending":
            new = "inactive"
            alert.active_since = None
        elif old == "firing":
            keep = timedelta(seconds=rule.keep_firing_for_seconds)
            if keep and alert.keep_firing_until is None:
                alert.keep_firing_until = now + keep
            if alert.keep_firing_until is None or now >= alert.keep_firing_until:
                new = "resolved"
                alert.resolved_at = now
                alert.keep_firing_until = None
            else:
                new = old
        else:
            new = old
    if new == old:
        return None
    alert.status = new
    return Change(old, new)


def flapping_update(
    alert: AlertState, rule: AlertRule, *, recent_changes: int, last_change_at: datetime | None, now: datetime
) -> str | None:
    """Enter flapping on more than `flap_threshold` changes within the window; leave after a quiet period.

    Returns "started", "ended" or None. `recent_changes` counts the alert's state changes in the last
    `flap_window_seconds` (this evaluation's included); `last_change_at` is its latest change.
    """
    if rule.flap_threshold == 0:
        return None
    if not alert.flapping and recent_changes > rule.flap_threshold:
        alert.flapping, alert.flapping_since = True, now
        return "started"
    quiet = timedelta(seconds=rule.flap_quiet_seconds)
    if alert.flapping and (last_change_at is None or now - last_change_at >= quiet):
        alert.flapping, alert.flapping_since = False, None
        return "ended"
    return None
