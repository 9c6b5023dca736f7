"""Event-driven evaluation: a stored status transition queues one evaluation of the status rules.

The registry and the config store emit `check.status_changed`, `instance.status_changed` and
`config.source_*` events in the transaction that stores the change; this receiver of the Event model's
`post_save` (it writes nothing) queues `alerts_evaluate_status` once per committed transaction, however
many transitions it held (a probe batch of 1,000 transitions queues one task).
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import connection, transaction

logger = logging.getLogger("monitoring.alerts")

TRIGGER_KINDS = frozenset(
    {"check.status_changed", "instance.status_changed", "config.source_failed", "config.source_recovered"}
)


def _queue() -> None:
    from monitoring.tasks import alerts_evaluate_status

    try:
        alerts_evaluate_status.delay()
    except Exception:  # noqa: BLE001 - the broker may be away; beat evaluates every rule every few seconds anyway
        logger.warning("Could not queue an alert evaluation; the periodic evaluation will catch up")


def event_saved(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    """post_save of `events.Event`: a transition queues one evaluation after its transaction commits."""
    if not created or instance.kind not in TRIGGER_KINDS:
        return
    if connection.in_atomic_block and any(func is _queue for _, func, _ in connection.run_on_commit):
        return  # this transaction already queues one
    transaction.on_commit(_queue)
