"""The registry API end to end: scopes, CRUD and filters, registration, heartbeat, checks, discovery, bad input."""

from __future__ import annotations

import pytest

from controlplane.events.models import Event
from registry.models import Check, CheckResult, Instance, Service
from tests.conftest import key_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def api():  # type: ignore[no-untyped-def]
    return key_client("registry:read", "registry:write")


@pytest.fixture
def reader():  # type: ignore[no-untyped-def]
    return key_client("registry:read")


def create_service(api, name: str = "billing", **fields):  # type: ignore[no-untyped-def]
    response = api.post("/api/v1/services/", {"name": name, "type": "http_api", **fields}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def register(api, service: str = "billing", **body):  # type: ignore[no-untyped-def]
    payload = {"instance_id": "web-1", "address": "127.0.0.1", "port": 8080, **body}
    return api.post(f"/api/v1/services/{service}/instances/", payload, format="json")


def assert_problem(response, status: int, *fields: str) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    for field in fields:
        assert field in body.get("errors", {}), body
    return body


def test_scopes_are_enforced(api, reader):
    create_service(api)
    assert reader.get("/api/v1/services/").status_code == 200
    assert reader.get("/api/v1/discover/billing/").status_code == 200
    assert_problem(reader.post("/api/v1/services/", {"name": "x"}, format="json"), 403)
    assert_problem(register(reader), 403)
    assert_problem(reader.delete("/api/v1/services/billing/"), 403)
    assert_problem(key_client("config:read").get("/api/v1/services/"), 403)
    from rest_framework.test import APIClient

    assert_problem(APIClient().get("/api/v1/services/"), 401)


def test_service_crud(api):
    body = create_service(
        api, display_name="Billing", tags=["eu", "payments"], capabilities=["invoices"], metadata={"team": "pay"}
    )
    assert body["health"] == {"unknown": 0, "passing": 0, "warning": 0, "critical": 0, "maintenance": 0}
    assert body["instances"] == []
    response = api.patch("/api/v1/services/billing/", {"owner": "pay-team", "tags": ["eu"]}, format="json")
    assert response.status_code == 200 and response.json()["owner"] == "pay-team" and response.json()["tags"] == ["eu"]
    assert_problem(api.patch("/api/v1/services/billing/", {"name": "renamed"}, format="json"), 400, "name")
    assert api.delete("/api/v1/services/billing/").status_code == 204
    assert_problem(api.get("/api/v1/services/billing/"), 404)
    assert list(Event.objects.filter(kind__startswith="service.").order_by("id").values_list("kind", flat=True)) == [
        "service.created",
        "service.updated",
        "service.deleted",
    ]


def test_service_create_bad_input(api):
    body = assert_problem(
        api.post(
            "/api/v1/services/", {"name": "Bad Name", "type": "mainframe", "tags": "eu", "metadata": []}, format="json"
        ),
        400,
        "tags",
        "metadata",
    )
    assert body["status"] == 400
    assert_problem(
        api.post("/api/v1/services/", {"name": "Bad Name", "type": "mainframe"}, format="json"), 400, "name", "type"
    )
    create_service(api)
    assert_problem(api.post("/api/v1/services/", {"name": "billing"}, format="json"), 400, "name")
    assert Service.objects.count() == 1


def test_service_list_filters(api):
    create_service(api, "billing", tags=["eu", "payments"], capabilities=["invoices"])
    create_service(api, "search", type="database", tags=["us"], description="Full-text search")
    create_service(api, "cache", type="cache", tags=["eu"])
    Instance.objects.create(
        service=Service.objects.get(name="cache"), instance_id="c1", address="10.0.0.1", port=6379, status="critical"
    )

    def names(query: str) -> list[str]:
        response = api.get(f"/api/v1/services/?{query}")
        assert response.status_code == 200, response.json()
        return [item["name"] for item in response.json()["results"]]

    assert names("") == ["billing", "cache", "search"]
    assert names("type=database") == ["search"]
    assert names("tag=eu") == ["billing", "cache"]
    assert names("capability=invoices") == ["billing"]
    assert names("status=critical") == ["cache"]
    assert names("search=full-text") == ["search"]
    assert names("tag=eu&type=cache") == ["cache"]
    listed = api.get("/api/v1/services/?name=cache").json()["results"]
    cache = next(item for item in listed if item["name"] == "cache")
    assert cache["instance_count"] == 1 and cache["health"]["critical"] == 1
    assert_problem(api.get("/api/v1/services/?status=sideways"), 400, "status")
    assert_problem(api.get("/api/v1/services/?type=mainframe"), 400, "type")
    assert api.get("/api/v1/services/?limit=1").json()["count"] == 3


def test_register_with_checks_then_upsert(api):
    create_service(api)
    response = register(
        api,
        tags=["v2"],
        metadata={"zone": "a"},
        checks=[
            {"name": "http", "kind": "http", "path": "/healthz", "expected_statuses": "200-299,304", "interval": 15},
            {"name": "beat", "kind": "ttl", "ttl": 30},
        ],
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["url"] == "http://127.0.0.1:8080" and body["status"] == "unknown"
    assert sorted(c["name"] for c in body["checks"]) == ["beat", "http"]
    again = register(api, port=9090, checks=[{"name": "http", "kind": "http"}])
    assert again.status_code == 200 and again.json()["port"] == 9090
    assert Instance.objects.count() == 1 and list(Check.objects.values_list("name", flat=True)) == ["http"]
    detail = api.get("/api/v1/services/billing/").json()
    assert detail["instances"][0]["instance_id"] == "web-1" and detail["instance_count"] == 1
    assert api.get("/api/v1/services/billing/instances/web-1/").json()["port"] == 9090


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"port": 70000}, ["port"]),
        ({"port": "http"}, ["port"]),
        ({"address": "bad host!"}, ["address"]),
        ({"scheme": "gopher"}, ["scheme"]),
        ({"address": "169.254.169.254", "checks": [{"name": "c", "kind": "http"}]}, ["address"]),
        ({"checks": [{"name": "c", "kind": "http", "interval": 0}]}, ["checks.0.interval"]),
        ({"checks": [{"name": "c", "kind": "http", "interval": 100000}]}, ["checks.0.interval"]),
        ({"checks": [{"name": "c", "kind": "http", "interval": 5, "timeout": 10}]}, ["checks.0.timeout"]),
        ({"checks": [{"name": "c", "kind": "carrier-pigeon"}]}, ["checks.0.kind"]),
        ({"checks": [{"name": "c", "kind": "custom", "probe": "oracle"}]}, ["checks.0.probe"]),
        ({"checks": [{"name": "c", "kind": "http", "expected_statuses": "2xx"}]}, ["checks.0.expected_statuses"]),
        ({"checks": [{"name": "c", "kind": "http", "path": "http://169.254.169.254/"}]}, ["checks.0.path"]),
        ({"checks": [{"name": "c", "kind": "http", "colour": "red"}]}, ["checks.0.colour"]),
        (
            {"checks": [{"name": "c", "kind": "tcp"}, {"name": "ok", "kind": "http", "interval": -1}]},
            ["checks.1.interval"],
        ),
        ({"deregister_critical_after": 10}, ["deregister_critical_after"]),
    ],
)
def test_bad_registration_is_a_400_with_field_errors_and_nothing_created(api, body, fields):
    create_service(api)
    events_before = Event.objects.count()
    assert_problem(register(api, **body), 400, *fields)
    assert Instance.objects.count() == 0 and Check.objects.count() == 0
    assert Event.objects.count() == events_before


def test_register_on_unknown_service_is_404(api):
    assert_problem(register(api, service="ghost"), 404)


def test_deregister(api):
    create_service(api)
    register(api)
    assert api.delete("/api/v1/services/billing/instances/web-1/").status_code == 204
    assert Instance.objects.count() == 0
    assert Event.objects.filter(kind="instance.deregistered").count() == 1
    assert_problem(api.delete("/api/v1/services/billing/instances/web-1/"), 404)


def test_heartbeat_passes_ttl_check_and_makes_instance_discoverable(api):
    create_service(api)
    register(api, checks=[{"name": "beat", "kind": "ttl", "ttl": 30}])
    assert api.get("/api/v1/discover/billing/").json() == []
    response = api.put("/api/v1/services/billing/instances/web-1/heartbeat/", {"output": "all good"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()[0]["status"] == "passing" and response.json()[0]["output"] == "all good"
    found = api.get("/api/v1/discover/billing/").json()
    assert [(i["instance_id"], i["url"], i["status"]) for i in found] == [("web-1", "http://127.0.0.1:8080", "passing")]
    warn = api.put("/api/v1/services/billing/instances/web-1/heartbeat/", {"status": "warning"}, format="json")
    assert warn.json()[0]["status"] == "warning"
    assert [i["status"] for i in api.get("/api/v1/discover/billing/").json()] == ["warning"]
    assert api.get("/api/v1/discover/billing/?status=passing").json() == []
    assert_problem(
        api.put("/api/v1/services/billing/instances/web-1/heartbeat/", {"status": "great"}, format="json"),
        400,
        "status",
    )
    assert_problem(
        api.put("/api/v1/services/billing/instances/web-1/heartbeat/", {"check": "nope"}, format="json"), 400, "check"
    )


def test_discovery_filters_by_tag_capability_and_status(api):
    create_service(api, capabilities=["invoices"])
    for instance_id, tags in (("a", ["eu", "v2"]), ("b", ["eu"]), ("c", ["us", "v2"])):
        register(
            api,
            instance_id=instance_id,
            tags=tags,
            metadata={"id": instance_id},
            checks=[{"name": "beat", "kind": "ttl", "ttl": 30}],
        )
        api.put(f"/api/v1/services/billing/instances/{instance_id}/heartbeat/", {}, format="json")
    api.put("/api/v1/services/billing/instances/c/heartbeat/", {"status": "critical"}, format="json")

    def ids(query: str = "") -> list[str]:
        response = api.get(f"/api/v1/discover/billing/{query}")
        assert response.status_code == 200
        return [item["instance_id"] for item in response.json()]

    assert ids() == ["a", "b"]
    assert ids("?tag=eu&tag=v2") == ["a"]
    assert ids("?tag=v2") == ["a"]
    assert ids("?capability=invoices") == ["a", "b"]
    assert ids("?capability=refunds") == []
    item = api.get("/api/v1/discover/billing/?tag=v2").json()[0]
    assert set(item) == {"instance_id", "address", "port", "scheme", "url", "tags", "metadata", "status"}
    assert item["metadata"] == {"id": "a"}
    assert_problem(api.get("/api/v1/discover/billing/?status=critical"), 400, "status")
    assert_problem(api.get("/api/v1/discover/ghost/"), 404)


def test_maintenance_endpoint(api):
    create_service(api)
    register(api)
    response = api.put(
        "/api/v1/services/billing/instances/web-1/maintenance/", {"enabled": True, "reason": "upgrade"}, format="json"
    )
    assert response.status_code == 200 and response.json()["status"] == "maintenance"
    assert response.json()["maintenance_reason"] == "upgrade"


def test_check_detail_results_and_run_now(api, http_target):
    create_service(api)
    register(
        api,
        address=http_target.host,
        port=http_target.port,
        checks=[{"name": "http", "kind": "http", "path": "/toggle"}],
    )
    check_id = Check.objects.get().pk
    detail = api.get(f"/api/v1/checks/{check_id}/").json()
    assert detail["status"] == "unknown" and detail["interval"] == 10 and detail["service"] == "billing"
    ran = api.post(f"/api/v1/checks/{check_id}/run/")
    assert ran.status_code == 200 and ran.json()["status"] == "passing"
    http_target.state["status"] = 500
    assert api.post(f"/api/v1/checks/{check_id}/run/").json()["status"] == "critical"
    results = api.get(f"/api/v1/checks/{check_id}/results/?limit=1").json()
    assert results["count"] == 2 and len(results["results"]) == 1
    assert results["results"][0]["status"] == "critical" and results["results"][0]["latency_ms"] is not None
    assert CheckResult.objects.count() == 2
    assert_problem(api.get("/api/v1/checks/999999/"), 404)


def test_run_now_refuses_ttl_checks(api):
    create_service(api)
    register(api, checks=[{"name": "beat", "kind": "ttl", "ttl": 30}])
    assert_problem(api.post(f"/api/v1/checks/{Check.objects.get().pk}/run/"), 409)


def test_openapi_schema_lists_registry_routes():
    from rest_framework.test import APIClient

    schema = APIClient().get("/api/schema/?format=json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for route in ("/api/v1/services/", "/api/v1/discover/{name}/", "/api/v1/checks/{id}/results/"):
        assert route in paths
