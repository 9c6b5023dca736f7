"""Pure health rules: anti-flap thresholds, instance aggregation, expected-status lists. No ORM, no I/O."""

from __future__ import annotations

from dataclasses import dataclass

PASSING, WARNING, CRITICAL, UNKNOWN, MAINTENANCE = "passing", "warning", "critical", "unknown", "maintenance"
# Worse statuses rank higher; an unknown check keeps an instance out of discovery but is not yet critical.
SEVERITY = {PASSING: 0, WARNING: 1, UNKNOWN: 2, CRITICAL: 3}


@dataclass(frozen=True)
class Thresholds:
    """Consul's `success_before_passing`, `failures_before_warning`, `failures_before_critical`."""

    successes_before_passing: int = 1
    failures_before_warning: int = 1
    failures_before_critical: int = 1


@dataclass(frozen=True)
class CheckState:
    """A check's status and consecutive counters."""

    status: str
    successes: int
    failures: int


def apply_result(state: CheckState, result: str, thresholds: Thresholds) -> CheckState:
    """The state after one probe result (Consul's StatusHandler).

    A passing or warning result counts as a success and is applied once `successes_before_passing`
    consecutive successes are seen; a critical result counts as a failure and is applied once
    `failures_before_critical` consecutive failures are seen, or reported as warning once
    `failures_before_warning` are. Until a threshold is reached the status stays as it was.
    """
    if result in (PASSING, WARNING):
        successes, failures = state.successes + 1, 0
        status = result if successes >= thresholds.successes_before_passing else state.status
    else:
        successes, failures = 0, state.failures + 1
        if failures >= thresholds.failures_before_critical:
            status = CRITICAL
        elif failures >= thresholds.failures_before_warning:
            status = WARNING
        else:
            status = state.status
    return CheckState(status, successes, failures)


def aggregate(check_statuses: list[str], *, maintenance: bool = False) -> str:
    """An instance's status: `maintenance` when set, else the worst of its checks (no checks = passing)."""
    if maintenance:
        return MAINTENANCE
    if not check_statuses:
        return PASSING
    return max(check_statuses, key=lambda status: SEVERITY.get(status, SEVERITY[UNKNOWN]))


class StatusSpecError(ValueError):
    """An expected-status list that cannot be parsed."""


def parse_expected_statuses(spec: str) -> tuple[tuple[int, int], ...]:
    """`"200-299,304"` -> `((200, 299), (304, 304))`; raises `StatusSpecError` when malformed."""
    ranges = []
    parts = [part.strip() for part in spec.split(",")]
    if not spec.strip() or any(not part for part in parts):
        raise StatusSpecError("Give statuses like 200-299,304.")
    for part in parts:
        low_text, _, high_text = part.partition("-")
        try:
            low = int(low_text)
            high = int(high_text) if high_text else low
        except ValueError:
            raise StatusSpecError(f"{part!r} is not a status or a range such as 200-299.") from None
        if not (100 <= low <= high <= 599):
            raise StatusSpecError(f"{part!r} is outside 100-599 or reversed.")
        ranges.append((low, high))
    return tuple(ranges)


def status_expected(status: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(low <= status <= high for low, high in ranges)


def truncate_output(text: str, limit: int = 4096) -> str:
    """At most `limit` bytes of UTF-8, cut on a character boundary."""
    raw = text.encode("utf-8", "replace")
    if len(raw) <= limit:
        return text
    return raw[:limit].decode("utf-8", "ignore")
