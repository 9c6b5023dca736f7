"""What a live message carries about events: kind, subject, time, and for a status transition its two status
words (allow-listed) — never the rest of the event's data (check output can quote internal hosts)."""

from __future__ import annotations

import pytest

from controlplane.events.services import emit
from monitoring.live import collect

pytestmark = pytest.mark.django_db


def test_transitions_carry_their_statuses_and_nothing_else_of_the_data() -> None:
    start = emit("service.created", subject="orders").pk
    emit(
        "check.status_changed",
        subject="orders/o-1/http",
        data={"service": "orders", "old": "passing", "new": "critical", "output": "refused by db-internal:5432"},
    )
    emit("instance.status_changed", subject="orders/o-1", data={"service": "orders", "old": "passing", "new": "<b>x"})
    emit("config.changed", subject="payments", data={"old": "passing", "new": "critical"})
    check, instance, config = collect(start)["events"]
    assert (check["old"], check["new"]) == ("passing", "critical")
    assert set(check) == {"id", "kind", "subject", "at", "old", "new"}
    assert "old" not in instance and "new" not in instance  # not a status word: not sent
    assert "old" not in config  # not a transition kind
