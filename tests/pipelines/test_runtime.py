"""The impure shell around the executor: chaining, enrich from the config store, deliveries to services."""

from __future__ import annotations

import json
import time

import pytest
from django.utils import timezone

from controlplane.events.models import Event
from pipelines import selectors, services
from pipelines.executor import prepare_packet
from pipelines.models import Delivery, Run
from tests.pipelines.conftest import register_service
from tests.pipelines.factories import PipelineFactory, transform_step

pytestmark = pytest.mark.django_db


def route_to(target: object) -> dict:
    return {"name": "route", "kind": "route", "priority": 1000, "config": {"rules": [{"when": "`true`", "to": target}]}}


def run(slug: str, payload: object = None) -> dict:
    return services.pipeline_run(selectors.pipeline_ref(slug), prepare_packet({"payload": payload}))


def test_a_route_to_a_pipeline_chains_it() -> None:
    PipelineFactory(slug="second", steps=[transform_step("second")])
    PipelineFactory(slug="first", steps=[transform_step("first"), route_to({"pipeline": "second"})])
    body = run("first")
    assert body["routes"] == ["pipeline:second"]
    chained = body["chained"][0]
    assert chained["pipeline"] == "second" and chained["status"] == "succeeded"
    assert chained["packet"]["tags"] == ["first", "second"]


def test_chaining_stops_at_the_depth_limit(settings) -> None:  # type: ignore[no-untyped-def]
    settings.PIPELINE_MAX_CHAIN_DEPTH = 3
    PipelineFactory(slug="loop", steps=[transform_step("hop"), route_to({"pipeline": "loop"})])
    body = run("loop")
    statuses, node = [body["status"]], body
    while node.get("chained"):
        node = node["chained"][0]
        statuses.append(node["status"])
    # Three pipelines run (the limit); the fourth link is cut off and reported.
    assert statuses == ["succeeded", "succeeded", "succeeded", "failed"]
    assert "chain depth limit (3)" in node["error"] and node["packet"]["tags"] == ["hop"]
    cut_off = Run.objects.get(status="failed")
    assert cut_off.input["tags"] == ["hop"], "the recorded input is the packet that reached the cut-off link"
    assert "chain depth limit" in cut_off.error


def test_chaining_to_a_missing_or_disabled_pipeline_is_reported() -> None:
    PipelineFactory(slug="off", enabled=False)
    PipelineFactory(
        slug="src",
        steps=[
            {
                "name": "r",
                "kind": "route",
                "config": {
                    "mode": "all",
                    "rules": [
                        {"when": "`true`", "to": {"pipeline": "ghost"}},
                        {"when": "`true`", "to": {"pipeline": "off"}},
                    ],
                },
            }
        ],
    )
    chained = run("src")["chained"]
    assert [(c["pipeline"], c["status"]) for c in chained] == [("ghost", "failed"), ("off", "failed")]
    assert "no pipeline 'ghost'" in chained[0]["error"] and "disabled" in chained[1]["error"]


def test_enrich_follows_config_changes(settings, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    from configstore.services import config_entry_set, namespace_create
    from configstore.signals import config_changed

    settings.PIPELINE_ENRICH_CACHE_SECONDS = 0.2
    with django_capture_on_commit_callbacks(execute=True):
        namespace = namespace_create(name="shop", actor="test")
        config_entry_set(namespace=namespace, key="region", value="eu", actor="test")
        config_entry_set(namespace=namespace, key="token", value="s3cr3t", secret=True, actor="test")
    steps = [
        {
            "name": "region",
            "kind": "enrich",
            "config": {"path": "metadata.region", "namespace": "shop", "key": "region"},
        },
        {
            "name": "token",
            "kind": "enrich",
            "config": {"path": "metadata.token", "namespace": "shop", "key": "token", "default": "none"},
        },
    ]
    PipelineFactory(slug="enrich", steps=steps)
    first = run("enrich")["packet"]["metadata"]
    assert first == {"region": "eu", "token": "none"}, "secret entries are never copied into packets"

    # In this process the config_changed signal invalidates at once.
    with django_capture_on_commit_callbacks(execute=True):
        config_entry_set(namespace=namespace, key="region", value="us", actor="test")
    assert run("enrich")["packet"]["metadata"]["region"] == "us"

    # Another process gets no signal: its cached copy expires after PIPELINE_ENRICH_CACHE_SECONDS.
    assert config_changed.disconnect(dispatch_uid="pipelines-enrich-cache")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            config_entry_set(namespace=namespace, key="region", value="ap", actor="test")
        assert run("enrich")["packet"]["metadata"]["region"] == "us"
        time.sleep(0.25)
        assert run("enrich")["packet"]["metadata"]["region"] == "ap"
    finally:
        from pipelines.enrichment import on_config_changed

        config_changed.connect(on_config_changed, weak=False, dispatch_uid="pipelines-enrich-cache")


def test_a_service_route_creates_a_delivery_that_posts_the_packet(scripted_receiver) -> None:  # type: ignore[no-untyped-def]
    receiver = scripted_receiver([200])
    register_service("billing", receiver.port)
    PipelineFactory(slug="pay", steps=[transform_step("t"), route_to({"service": "billing"})])
    body = services.pipeline_run(selectors.pipeline_ref("pay"), prepare_packet({"id": "pk-1", "payload": {"a": 1}}))
    delivery = Delivery.objects.get(pk=body["deliveries"][0])
    assert delivery.status == "pending" and delivery.service == "billing"
    assert services.delivery_attempt(delivery_id=delivery.pk).status == "delivered"
    request = receiver.requests[0]
    assert request["path"] == "/ingest" and request["json"]["id"] == "pk-1" and request["json"]["tags"] == ["t"]
    assert request["headers"]["X-Controlplane-Pipeline"] == "pay"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)
    assert services.delivery_attempt(delivery_id=delivery.pk) is None, "a settled delivery is never sent again"


def test_failed_deliveries_retry_with_backoff_then_give_up(scripted_receiver, settings) -> None:  # type: ignore[no-untyped-def]
    settings.PIPELINE_DELIVERY_MAX_ATTEMPTS = 2
    receiver = scripted_receiver([503])
    register_service("billing", receiver.port)
    PipelineFactory(slug="pay", steps=[route_to({"service": "billing"})])
    delivery_id = run("pay", {"a": 1})["deliveries"][0]
    outcome = services.delivery_attempt(delivery_id=delivery_id)
    assert outcome.status == "pending" and outcome.retry_in == 1.0
    delivery = Delivery.objects.get(pk=delivery_id)
    assert delivery.last_error == "HTTP 503" and delivery.next_attempt_at is not None
    assert services.delivery_attempt(delivery_id=delivery_id) is None, "not before its backoff"
    Delivery.objects.filter(pk=delivery_id).update(next_attempt_at=timezone.now())
    assert services.delivery_attempt(delivery_id=delivery_id).status == "failed"
    event = Event.objects.get(kind="pipeline.delivery_failed")
    assert event.subject == "pay" and event.data["attempts"] == 2 and event.data["service"] == "billing"
    assert len(receiver.requests) == 2


def test_a_delivery_without_a_passing_instance_or_to_a_denied_address_fails_cleanly(settings) -> None:  # type: ignore[no-untyped-def]
    settings.PIPELINE_DELIVERY_MAX_ATTEMPTS = 1
    PipelineFactory(slug="pay", steps=[route_to({"service": "nobody"})])
    delivery_id = run("pay", 1)["deliveries"][0]
    assert services.delivery_attempt(delivery_id=delivery_id).status == "failed"
    assert "no passing instance" in Delivery.objects.get(pk=delivery_id).last_error
    settings.EGRESS_DENY_NETWORKS = ["127.0.0.0/8"]
    register_service("local", 9)
    PipelineFactory(slug="deny", steps=[route_to({"service": "local"})])
    delivery_id = run("deny", 1)["deliveries"][0]
    assert services.delivery_attempt(delivery_id=delivery_id).status == "failed"
    assert Delivery.objects.get(pk=delivery_id).last_error.startswith("egress denied")


def test_failed_and_dropped_packets_are_not_delivered(scripted_receiver) -> None:  # type: ignore[no-untyped-def]
    receiver = scripted_receiver([200])
    register_service("billing", receiver.port)
    steps = [
        {"name": "gate", "kind": "filter", "config": {"when": "payload == `0`"}},
        {
            "name": "bad",
            "kind": "transform",
            "condition": "payload == `1`",
            "config": {"operations": [{"op": "upper", "path": "payload"}]},
        },
        route_to({"service": "billing"}),
    ]
    PipelineFactory(slug="pay", steps=steps)
    body = services.pipeline_run_batch(
        selectors.pipeline_ref("pay"), [prepare_packet({"payload": n}) for n in (0, 1, 2)]
    )
    assert [r["status"] for r in body["results"]] == ["dropped", "failed", "succeeded"]
    assert Delivery.objects.count() == 1 and json.dumps(Delivery.objects.get().packet["payload"]) == "2"
