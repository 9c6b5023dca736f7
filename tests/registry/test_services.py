"""Registry services: registration (upsert, atomic, validated), heartbeats, TTL expiry, reaping, retention."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from controlplane.events.models import Event
from registry import services
from registry.models import Check, CheckResult, Instance, Service
from tests.registry.factories import CheckFactory, ServiceFactory

pytestmark = pytest.mark.django_db


def register(service, **overrides):  # type: ignore[no-untyped-def]
    body = {"instance_id": "web-1", "address": "127.0.0.1", "port": 8080, "checks": [{"name": "http", "kind": "http"}]}
    body.update(overrides)
    return services.instance_register(service=service, actor="test", **body)


def kinds() -> list[str]:
    return list(Event.objects.order_by("id").values_list("kind", flat=True))


def test_service_create_emits_event_and_validates():
    service = services.service_create(name="billing", type="http_api", tags=["eu"], actor="key:abc")
    event = Event.objects.get(kind="service.created")
    assert (event.subject, event.actor) == ("billing", "key:abc")
    with pytest.raises(ValidationError) as exc:
        services.service_create(name="bad name!", type="nope", tags="x")
    assert {"name", "type", "tags"} <= set(exc.value.message_dict)
    assert list(Service.objects.values_list("name", flat=True)) == [service.name]


def test_register_creates_instance_with_checks_and_defaults():
    service = ServiceFactory()
    instance, created = register(service)
    assert created
    check = instance.checks.get()
    assert (check.interval, check.timeout, check.successes_before_passing, check.failures_before_critical) == (
        10,
        5,
        1,
        1,
    )
    assert check.status == "unknown" and check.next_run_at is not None
    assert instance.status == "unknown"
    assert instance.url == "http://127.0.0.1:8080"
    event = Event.objects.get(kind="instance.registered")
    assert event.data["checks"] == ["http"] and event.data["created"] is True


def test_reregister_upserts_keeps_state_and_replaces_check_set():
    service = ServiceFactory()
    instance, _ = register(service, checks=[{"name": "http", "kind": "http"}, {"name": "port", "kind": "tcp"}])
    Check.objects.filter(instance=instance, name="http").update(status="passing", consecutive_successes=5)
    again, created = register(service, port=9090, checks=[{"name": "http", "kind": "http"}])
    assert not created and again.pk == instance.pk and again.port == 9090
    http = again.checks.get()
    assert (http.name, http.status, http.consecutive_successes) == ("http", "passing", 5)
    assert Instance.objects.count() == 1


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"port": 70000}, "port"),
        ({"port": 0}, "port"),
        ({"address": "not a host!"}, "address"),
        ({"scheme": "gopher"}, "scheme"),
        ({"checks": [{"name": "c", "kind": "http", "interval": 0.5}]}, "checks.0.interval"),
        ({"checks": [{"name": "c", "kind": "http", "interval": 90000}]}, "checks.0.interval"),
        ({"checks": [{"name": "c", "kind": "http", "interval": 5, "timeout": 6}]}, "checks.0.timeout"),
        ({"checks": [{"name": "c", "kind": "smoke"}]}, "checks.0.kind"),
        ({"checks": [{"name": "c", "kind": "custom", "probe": "mysql"}]}, "checks.0.probe"),
        ({"checks": [{"name": "c", "kind": "http", "expected_statuses": "200-abc"}]}, "checks.0.expected_statuses"),
        ({"checks": [{"name": "c", "kind": "http", "expected_statuses": "299-200"}]}, "checks.0.expected_statuses"),
        ({"checks": [{"name": "c", "kind": "ttl"}]}, "checks.0.ttl"),
        ({"checks": [{"name": "c", "kind": "http"}, {"name": "c", "kind": "tcp"}]}, "checks.1.name"),
        ({"address": "169.254.169.254"}, "address"),
        ({"checks": [{"name": "c", "kind": "http", "path": "http://169.254.169.254/latest/"}]}, "checks.0.path"),
        (
            {"checks": [{"name": "c", "kind": "tcp", "params": {"host": "metadata.google.internal"}}]},
            "checks.0.params.host",
        ),
        ({"deregister_critical_after": 30}, "deregister_critical_after"),
    ],
)
def test_bad_registration_is_refused_and_creates_nothing(overrides, field):
    service = ServiceFactory()
    with pytest.raises(ValidationError) as exc:
        register(service, **overrides)
    assert field in exc.value.message_dict, exc.value.message_dict
    assert Instance.objects.count() == 0 and Check.objects.count() == 0
    assert "instance.registered" not in kinds()


def test_bad_reregistration_leaves_existing_instance_untouched():
    service = ServiceFactory()
    register(service)
    with pytest.raises(ValidationError):
        register(service, port=8081, checks=[{"name": "x", "kind": "http", "interval": 0}])
    instance = Instance.objects.get()
    assert instance.port == 8080 and list(instance.checks.values_list("name", flat=True)) == ["http"]


def test_ttl_heartbeat_passes_and_lapse_turns_critical():
    service = ServiceFactory()
    instance, _ = register(service, checks=[{"name": "beat", "kind": "ttl", "ttl": 30}])
    [check] = services.check_ttl_update(instance=instance, output="alive")
    assert check.status == "passing" and check.output == "alive"
    assert 29 < (check.next_run_at - timezone.now()).total_seconds() <= 30
    assert Instance.objects.get().status == "passing"
    # Before the TTL lapses nothing happens; after it, beat's expiry marks it critical once.
    assert services.ttl_checks_expire() == 0
    assert services.ttl_checks_expire(now=timezone.now() + timedelta(seconds=31)) == 1
    check.refresh_from_db()
    assert check.status == "critical" and "TTL expired" in check.output and check.next_run_at is None
    assert services.ttl_checks_expire(now=timezone.now() + timedelta(seconds=62)) == 0
    changes = Event.objects.filter(kind="check.status_changed").order_by("id")
    assert [(e.data["old"], e.data["new"]) for e in changes] == [("unknown", "passing"), ("passing", "critical")]
    assert Instance.objects.get().status == "critical"


def test_heartbeat_with_warning_status_and_named_check():
    instance, _ = register(
        ServiceFactory(), checks=[{"name": "a", "kind": "ttl", "ttl": 10}, {"name": "b", "kind": "ttl", "ttl": 10}]
    )
    [check] = services.check_ttl_update(instance=instance, check_name="b", status="warning", output="queue deep")
    assert (check.name, check.status) == ("b", "warning")
    assert Check.objects.get(name="a").status == "unknown"


def test_events_only_on_transitions_not_on_output_changes():
    instance, _ = register(ServiceFactory(), checks=[{"name": "beat", "kind": "ttl", "ttl": 10}])
    for output in ("one", "two", "three"):
        services.check_ttl_update(instance=instance, output=output)
    assert Event.objects.filter(kind="check.status_changed").count() == 1
    assert Event.objects.filter(kind="instance.status_changed").count() == 1
    assert CheckResult.objects.count() == 3


def test_maintenance_overrides_status_and_hides_from_discovery():
    from registry.selectors import discover

    service = ServiceFactory()
    instance, _ = register(service, checks=[{"name": "beat", "kind": "ttl", "ttl": 10}])
    services.check_ttl_update(instance=instance)
    assert [i.instance_id for i in discover(service_name=service.name)] == ["web-1"]
    services.instance_set_maintenance(instance=instance, enabled=True, reason="deploy")
    assert Instance.objects.get().status == "maintenance"
    assert discover(service_name=service.name) == []
    services.instance_set_maintenance(instance=instance, enabled=False)
    assert Instance.objects.get().status == "passing"


def test_critical_instance_is_deregistered_after_its_limit():
    service = ServiceFactory()
    instance, _ = register(service, deregister_critical_after=60, checks=[{"name": "beat", "kind": "ttl", "ttl": 10}])
    keep, _ = register(service, instance_id="web-2", checks=[{"name": "beat", "kind": "ttl", "ttl": 10}])
    services.ttl_checks_expire(now=timezone.now() + timedelta(seconds=11))
    assert set(Instance.objects.values_list("status", flat=True)) == {"critical"}
    assert services.instances_reap_critical() == 0  # critical for less than a minute
    assert services.instances_reap_critical(now=timezone.now() + timedelta(seconds=11 + 61)) == 1
    assert list(Instance.objects.values_list("instance_id", flat=True)) == ["web-2"]  # no limit set: kept
    event = Event.objects.get(kind="instance.deregistered")
    assert event.data["instance_id"] == "web-1" and "deregister_critical_after" in event.data["reason"]


def test_recovery_clears_critical_since():
    instance, _ = register(
        ServiceFactory(), deregister_critical_after=60, checks=[{"name": "beat", "kind": "ttl", "ttl": 10}]
    )
    services.ttl_checks_expire(now=timezone.now() + timedelta(seconds=11))
    assert Instance.objects.get().critical_since is not None
    services.check_ttl_update(instance=instance)
    assert Instance.objects.get().critical_since is None
    assert services.instances_reap_critical(now=timezone.now() + timedelta(seconds=600)) == 0


def test_result_retention_by_age_and_count():
    check = CheckFactory()
    now = timezone.now()
    CheckResult.objects.bulk_create(
        [CheckResult(health_check=check, created_at=now - timedelta(minutes=i), status="passing") for i in range(10)]
        + [CheckResult(health_check=check, created_at=now - timedelta(days=30), status="critical")]
    )
    other = CheckFactory()
    CheckResult.objects.create(health_check=other, created_at=now, status="passing")
    deleted = services.check_results_prune(max_age_days=7, keep_per_check=4)
    assert deleted == 7
    kept = list(CheckResult.objects.filter(health_check=check).values_list("created_at", flat=True))
    assert sorted(kept, reverse=True) == [now - timedelta(minutes=i) for i in range(4)]
    assert CheckResult.objects.filter(health_check=other).count() == 1


def test_disabling_a_check_removes_it_from_the_aggregate():
    instance, _ = register(
        ServiceFactory(), checks=[{"name": "a", "kind": "ttl", "ttl": 10}, {"name": "b", "kind": "ttl", "ttl": 10}]
    )
    services.check_ttl_update(instance=instance, check_name="a")
    assert Instance.objects.get().status == "unknown"  # b has no result yet
    services.check_set_enabled(checks=Check.objects.filter(name="b"), enabled=False)
    assert Instance.objects.get().status == "passing"


def test_deleting_a_service_removes_instances_and_emits():
    service = ServiceFactory()
    register(service)
    services.service_delete(service=service, actor="test")
    assert Instance.objects.count() == 0 and "service.deleted" in kinds()
