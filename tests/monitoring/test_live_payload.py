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


def test_instance_and_check_statuses_ride_along_newest_first_and_allow_listed() -> None:
    start = emit("service.created", subject="orders").pk
    emit("check.status_changed", subject="orders/o-1/http", data={"check_id": 7, "old": "passing", "new": "warning"})
    emit("check.status_changed", subject="orders/o-1/http", data={"check_id": 7, "old": "warning", "new": "critical"})
    emit("check.status_changed", subject="orders/o-1/tcp", data={"check_id": 8, "old": "passing", "new": "<i>"})
    emit("instance.status_changed", subject="orders/o-1", data={"service": "orders", "new": "critical"})
    payload = collect(start)
    assert payload["checks"] == {"7": "critical"}  # the newest transition of a check; not a status word: dropped
    assert payload["instances"] == {"orders/o-1": "critical"}


def test_too_many_instance_and_check_changes_tell_the_page_to_reload(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from monitoring import live

    monkeypatch.setattr(live, "MAX_TARGETS_PER_MESSAGE", 2)
    start = emit("service.created", subject="orders").pk
    for check_id in (1, 2, 3):
        emit("check.status_changed", subject=f"orders/o/{check_id}", data={"check_id": check_id, "new": "critical"})
    payload = collect(start)
    assert payload["reload"] and payload["checks"] == {} and payload["instances"] == {}


def test_the_top_alerts_carry_names_and_statuses_but_no_labels_or_annotations() -> None:
    from django.utils import timezone

    from monitoring.models import AlertRule, AlertState

    rule = AlertRule.objects.create(
        name="worker down", target_kind="labels", metric="status", annotations={"runbook": "http://wiki.internal/x"}
    )
    now = timezone.now()
    for index, status in enumerate(["firing", "firing", "pending", "inactive"]):
        AlertState.objects.create(
            rule=rule, target_key=f"service:1/instance:{index}", fingerprint=f"f{index}", status=status,
            labels={"target": f"batch/worker-{index}", "service": "batch", "host": "10.1.2.3"},
            active_since=now, firing_since=now if status == "firing" else None, value=2.0,
        )  # fmt: skip
    start = emit("alert.firing", subject="worker down").pk - 1
    alerts = collect(start)["alert_list"]
    assert [a["target"] for a in alerts["firing"]] == ["batch/worker-1", "batch/worker-0"]
    assert [a["status"] for a in alerts["pending"]] == ["pending"]
    row = alerts["firing"][0]
    assert set(row) == {"id", "status", "flapping", "rule", "severity", "target", "service", "value", "since"}
    assert "10.1.2.3" not in str(alerts) and "wiki.internal" not in str(alerts)
