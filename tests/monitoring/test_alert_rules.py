"""Rule evaluation on each metric and target kind, the state machine, flap detection and annotations."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from configstore.models import Namespace, Source
from monitoring.alerting.evaluation import render
from monitoring.alerting.states import advance
from monitoring.models import AlertRule, AlertState
from monitoring.points import Agg, floor_time
from monitoring.services import alerts as alert_services
from monitoring.services.metrics import points_replace
from tests.monitoring.alert_fixtures import run, seconds, target

pytestmark = pytest.mark.django_db


def _rule(**fields):  # type: ignore[no-untyped-def]
    values = {"name": "r", "comparison": "gt"}
    values.update(fields)
    return alert_services.alert_rule_create(**values)


def _minutes(kind: str, target_id: str, stored: str, aggs: list[Agg], *, end=None) -> None:  # type: ignore[no-untyped-def]
    end = floor_time(end or timezone.now(), 60)
    points = {((kind, target_id, stored), end - timedelta(minutes=i + 1)): agg for i, agg in enumerate(aggs)}
    points_replace(resolution=60, points=points)


def _latency(values: list[float]) -> Agg:
    agg = Agg(count=len(values), total=float(len(values)))
    for value in values:
        agg.observe(value)
    return agg


def test_latency_p95_of_a_service_from_its_minute_points() -> None:
    check = target("passing")
    service_id = str(check.instance.service_id)
    slow = _rule(target_kind="service", target="payments", metric="latency_p95", threshold=250)
    fast = _rule(name="fast", target_kind="service", target="payments", metric="latency_p95", threshold=5000)
    _minutes("service", service_id, "status", [_latency([20.0] * 10 + [900.0] * 5), _latency([30.0] * 20)])
    now = timezone.now()
    run(slow, now)
    run(fast, now)
    alert = AlertState.objects.get(rule=slow)
    assert alert.status == "firing" and alert.value > 250
    assert not AlertState.objects.filter(rule=fast).exists(), "below threshold: no alert row at all"


def test_points_older_than_the_lookback_are_not_read(settings) -> None:  # type: ignore[no-untyped-def]
    settings.MONITORING_ALERT_LOOKBACK_SECONDS = 120
    check = target("passing")
    rule = _rule(target_kind="service", target="payments", metric="latency_p95", threshold=250)
    _minutes(
        "service",
        str(check.instance.service_id),
        "status",
        [_latency([900.0] * 5)],
        end=timezone.now() - timedelta(minutes=10),
    )
    run(rule, timezone.now())
    assert not AlertState.objects.exists()


def test_error_rate_and_throughput_of_an_api_route() -> None:
    route = "GET /api/v1/services/"
    agg = Agg(count=100, total=100.0, breakdown={"5xx": 12.0, "4xx": 3.0})
    _minutes("route", route, "requests", [agg])
    errors = _rule(target_kind="route", target=route, metric="error_rate", threshold=0.1)
    busy = _rule(name="busy", target_kind="route", target=route, metric="throughput", threshold=1.0)
    quiet = _rule(
        name="quiet", target_kind="route", target=route, metric="success_ratio", comparison="lt", threshold=0.5
    )
    now = timezone.now()
    for rule in (errors, busy, quiet):
        run(rule, now)
    assert AlertState.objects.get(rule=errors).value == pytest.approx(0.12)
    assert AlertState.objects.filter(rule=busy).count() == 0, "100 requests in 300 s is 0.33/s"
    assert AlertState.objects.filter(rule=quiet).count() == 0


def test_pipeline_error_rate() -> None:
    _minutes("pipeline", "orders", "packets", [Agg(count=50, total=0.0, breakdown={"errors": 25.0})])
    rule = _rule(target_kind="pipeline", target="orders", metric="error_rate", threshold=0.3)
    run(rule, timezone.now())
    assert AlertState.objects.get(rule=rule).status == "firing"


def test_source_failing_on_a_namespace_and_the_whole_system() -> None:
    namespace = Namespace.objects.create(name="shop")
    Source.objects.create(
        namespace=namespace,
        name="file",
        kind="file",
        path="shop.yaml",
        format="yaml",
        priority=200,
        last_error="bad YAML",
    )
    ns_rule = _rule(target_kind="namespace", target="shop", metric="source_failing", comparison="ge", threshold=1)
    system_rule = _rule(name="sys", target_kind="system", metric="source_failing", comparison="ge", threshold=1)
    other = _rule(
        name="other", target_kind="namespace", target="billing", metric="source_failing", comparison="ge", threshold=1
    )
    now = timezone.now()
    for rule in (ns_rule, system_rule, other):
        run(rule, now)
    assert AlertState.objects.get(rule=ns_rule).labels["namespace"] == "shop"
    assert AlertState.objects.get(rule=system_rule).target_key == "system"
    assert not AlertState.objects.filter(rule=other).exists()


def test_queue_lag_of_the_system() -> None:
    agg = Agg(count=2, total=9000.0, min=1000.0, max=8000.0)
    _minutes("celery", "probes", "dispatch_lag", [agg])
    rule = _rule(target_kind="system", metric="queue_lag", threshold=5000)
    run(rule, timezone.now())
    assert AlertState.objects.get(rule=rule).value == 8000.0


def test_status_of_a_check_a_service_and_every_instance_matching_labels() -> None:
    bad = target("critical", service="payments", instance_id="p-1")
    target("passing", service="payments", instance_id="p-2")
    good = target("passing", service="search", instance_id="s-1")
    from registry.models import Instance, Service

    Service.objects.filter(name="payments").update(tags=["pci"], metadata={"team": "money"})
    Instance.objects.filter(pk=good.instance_id).update(tags=["pci"])
    check_rule = _rule(
        target_kind="check", target=f"payments/p-1/{bad.name}", metric="status", comparison="ge", threshold=2
    )
    by_id = _rule(name="by-id", target_kind="check", target=str(bad.pk), metric="status", comparison="ge", threshold=2)
    service_rule = _rule(
        name="svc", target_kind="service", target="payments", metric="status", comparison="ge", threshold=2
    )
    labels_rule = _rule(
        name="pci", target_kind="labels", match_labels={"tag": "pci"}, metric="status", comparison="ge", threshold=0
    )
    team_rule = _rule(
        name="team", target_kind="labels", match_labels={"team": "money"}, metric="status", comparison="ge", threshold=0
    )
    now = timezone.now()
    for rule in (check_rule, by_id, service_rule, labels_rule, team_rule):
        run(rule, now)
    assert AlertState.objects.get(rule=check_rule).labels["check"] == bad.name
    assert AlertState.objects.get(rule=by_id).target_key.endswith(f"/check:{bad.pk}")
    service_alert = AlertState.objects.get(rule=service_rule)
    assert service_alert.target_key == f"service:{bad.instance.service_id}", "the dashboard finds it by this key"
    pci = sorted(AlertState.objects.filter(rule=labels_rule).values_list("labels__instance", flat=True))
    assert pci == ["p-1", "p-2", "s-1"], "tags of the service or the instance"
    team = sorted(AlertState.objects.filter(rule=team_rule).values_list("labels__instance", flat=True))
    assert team == ["p-1", "p-2"]


def test_an_instance_that_disappears_resolves() -> None:
    check = target("critical")
    rule = _rule(target_kind="instance", target="payments/i-1", metric="status", comparison="ge", threshold=2)
    t0 = timezone.now()
    run(rule, t0)
    check.instance.delete()
    run(rule, seconds(t0, 10))
    assert AlertState.objects.get(rule=rule).status == "resolved"


def test_rule_labels_cannot_override_alertname_or_severity() -> None:
    target("critical")
    rule = _rule(
        target_kind="instance",
        target="payments/i-1",
        metric="status",
        comparison="ge",
        threshold=2,
        labels={"alertname": "spoof", "severity": "info", "team": "pay"},
        severity="critical",
    )
    run(rule, timezone.now())
    labels = AlertState.objects.get(rule=rule).labels
    assert (labels["alertname"], labels["severity"], labels["team"]) == ("r", "critical", "pay")


def test_annotation_templates_substitute_only_known_names() -> None:
    labels = {"service": "payments", "target": "payments/i-1"}
    assert (
        render("{{ $value }} ms on {{ target }} ({{ labels.service }})", value=312.5, labels=labels)
        == "312.5 ms on payments/i-1 (payments)"
    )
    assert render("{{ value }}", value=None, labels={}) == "n/a"
    assert render("{{ __import__('os') }} {{ labels.nope }}", value=1, labels=labels) == "{{ __import__('os') }} "


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        # (seconds, condition holds) -> status after each step; for = 30 s, keep_firing_for = 0
        ([(0, True), (10, True), (30, True)], ["pending", "pending", "firing"]),
        ([(0, True), (10, False)], ["pending", "inactive"]),
        ([(0, True), (30, True), (40, False), (50, True)], ["pending", "firing", "resolved", "pending"]),
        ([(0, False), (10, False)], ["inactive", "inactive"]),
    ],
)
def test_state_machine(steps, expected) -> None:  # type: ignore[no-untyped-def]
    rule = AlertRule(for_seconds=30, keep_firing_for_seconds=0)
    alert = AlertState(status="inactive")
    t0 = timezone.now()
    seen = []
    for offset, holds in steps:
        advance(alert, rule, holds=holds, value=1.0, now=seconds(t0, offset))
        seen.append(alert.status)
    assert seen == expected


def _quiet_run_queries(count: int) -> list[str]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from registry.models import Check, Instance

    checks = [target("critical", service="fleet", instance_id=f"n-{i}") for i in range(count)]
    rule = AlertRule.objects.filter(name="fleet").first() or _rule(
        name="fleet",
        target_kind="labels",
        match_labels={"service": "fleet"},
        metric="status",
        comparison="ge",
        threshold=2,
        channels=None,
    )
    t0 = timezone.now()
    run(rule, t0)
    Check.objects.filter(pk__in=[c.pk for c in checks]).update(status="passing")
    Instance.objects.filter(service__name="fleet").update(status="passing")
    run(rule, seconds(t0, 10))
    run(rule, seconds(t0, 20))
    with CaptureQueriesContext(connection) as queries:
        run(rule, seconds(t0, 30))
    return [query["sql"] for query in queries]


def test_a_quiet_evaluation_costs_the_same_queries_at_two_sizes() -> None:
    small = _quiet_run_queries(5)
    AlertState.objects.all().delete()
    from registry.models import Service

    Service.objects.filter(name="fleet").delete()
    large = _quiet_run_queries(40)
    assert len(small) == len(large), (small, large)
    assert not [sql for sql in large if sql.startswith('UPDATE "monitoring_alertstate"')], "nothing changed: no write"
    assert AlertState.objects.filter(status="resolved").count() == 40
