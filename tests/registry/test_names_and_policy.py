"""URL-safe names (services, instance ids, check names) and the probe policy enforced at registration."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from controlplane.events.models import Event
from registry.models import Check, Instance, Service, validate_url_safe_name
from tests.conftest import key_client
from tests.registry.test_api import assert_problem, create_service, register

pytestmark = pytest.mark.django_db

BAD_NAMES = [
    "",
    ".",
    "..",
    "../../x",
    "a/b",
    "/a",
    "-lead",
    "_lead",
    ".hidden",
    "has space",
    "tab\tname",
    "line\nbreak",
    "\u202eevil",  # right-to-left override
    "abc\u200bdef",  # zero-width space
    "p\u0430yments",  # Cyrillic a, looks like "payments"
    "caf\u00e9",
    "a%2Fb",
    "a?b",
    "a#b",
    "a:b",
]
GOOD_NAMES = ["web-1", "web_1.eu-west", "A1", "1", "x" * 100]


@pytest.fixture
def api():  # type: ignore[no-untyped-def]
    return key_client("registry:read", "registry:write")


@pytest.mark.parametrize("instance_id", [*BAD_NAMES, "x" * 201])
def test_instance_ids_must_be_url_safe(api, instance_id):
    create_service(api)
    assert_problem(register(api, instance_id=instance_id), 400, "instance_id")
    assert Instance.objects.count() == 0


@pytest.mark.parametrize("name", [*BAD_NAMES, "x" * 101])
def test_service_names_must_be_url_safe(api, name):
    response = api.post("/api/v1/services/", {"name": name, "type": "http_api"}, format="json")
    assert_problem(response, 400, "name")
    assert Service.objects.count() == 0


@pytest.mark.parametrize("name", [*BAD_NAMES, "x" * 101])
def test_check_names_must_be_url_safe(api, name):
    create_service(api)
    assert_problem(register(api, checks=[{"name": name, "kind": "ttl", "ttl": 30}]), 400, "checks.0.name")
    assert Check.objects.count() == 0


@pytest.mark.parametrize("name", [*BAD_NAMES, "trailing\n"])
def test_the_model_validator_refuses_what_the_api_refuses(name):
    """Admin forms and services share the model validator; a trailing newline must not slip past `$`."""
    with pytest.raises(ValidationError):
        validate_url_safe_name(name)


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_every_accepted_name_is_routable_end_to_end(api, name):
    create_service(api, name=name)
    response = register(api, service=name, instance_id=name, checks=[{"name": name, "kind": "ttl", "ttl": 30}])
    assert response.status_code == 201, response.json()
    base = f"/api/v1/services/{name}/instances/{name}/"
    assert api.get(base).json()["instance_id"] == name
    assert api.put(base + "heartbeat/", {"check": name}, format="json").status_code == 200
    assert api.put(base + "maintenance/", {"enabled": True}, format="json").status_code == 200
    assert api.get(f"/api/v1/discover/{name}/").status_code == 200
    assert api.get(f"/api/v1/services/{name}/").json()["name"] == name
    assert api.delete(base).status_code == 204
    assert api.delete(f"/api/v1/services/{name}/").status_code == 204


def test_admin_refuses_a_bad_service_name(admin_client):
    response = admin_client.post("/admin/registry/service/add/", {"name": "../x", "type": "other"})
    assert response.status_code == 200 and "Use ASCII letters" in response.content.decode()
    assert not Service.objects.exists()


HTTP = {"name": "c", "kind": "http"}


@pytest.mark.parametrize(
    ("check", "field"),
    [
        ({**HTTP, "method": "POST"}, "checks.0.method"),
        ({**HTTP, "method": "delete"}, "checks.0.method"),
        ({**HTTP, "method": "PATCH"}, "checks.0.method"),
        ({**HTTP, "method": "TRACE"}, "checks.0.method"),
        ({**HTTP, "headers": {"Host": "admin.internal"}}, "checks.0.headers"),
        ({**HTTP, "headers": {"HOST": "admin.internal"}}, "checks.0.headers"),
        ({**HTTP, "headers": {"Transfer-Encoding": "chunked"}}, "checks.0.headers"),
        ({**HTTP, "headers": {"Content-Length": "0"}}, "checks.0.headers"),
        ({**HTTP, "headers": {"Connection": "upgrade", "Upgrade": "websocket"}}, "checks.0.headers"),
        ({**HTTP, "headers": {"Cookie": "sessionid=x"}}, "checks.0.headers"),
        ({**HTTP, "headers": {"X-Forwarded-For": "127.0.0.1"}}, "checks.0.headers"),
        ({**HTTP, "headers": {"X-A": "1\r\nHost: evil"}}, "checks.0.headers"),
        ({**HTTP, "headers": {"Bad Name": "1"}}, "checks.0.headers"),
        ({**HTTP, "headers": {f"X-{n}": "1" for n in range(21)}}, "checks.0.headers"),
        ({**HTTP, "path": "/x HTTP/1.1\r\nHost: evil\r\n\r\nGET /"}, "checks.0.path"),
        ({**HTTP, "path": "/a b"}, "checks.0.path"),
        ({**HTTP, "path": "/a\x00"}, "checks.0.path"),
        ({**HTTP, "path": "http://[::ffff:169.254.169.254]/"}, "checks.0.path"),
        ({**HTTP, "path": "http://[64:ff9b::a9fe:a9fe]/"}, "checks.0.path"),
        ({**HTTP, "path": "http://100.100.100.200/"}, "checks.0.path"),
        ({**HTTP, "path": "http://metadata.google.internal/"}, "checks.0.path"),
        ({"name": "c", "kind": "tcp", "params": {"host": "2002:a9fe:a9fe::1"}}, "checks.0.params.host"),
        ({"name": "c", "kind": "tcp", "params": {"host": "fd00:ec2::254"}}, "checks.0.params.host"),
    ],
)
def test_checks_outside_the_probe_policy_are_400(api, check, field):
    create_service(api)
    before = Event.objects.count()
    assert_problem(register(api, checks=[check]), 400, field)
    assert Instance.objects.count() == 0 and Event.objects.count() == before


@pytest.mark.parametrize("address", ["100.100.100.200", "192.0.0.192", "::ffff:a9fe:a9fe", "2002:a9fe:a9fe::1"])
def test_instances_at_metadata_addresses_cannot_be_probed(api, address):
    create_service(api)
    assert_problem(register(api, address=address, checks=[HTTP]), 400, "address")


def test_probe_policy_allows_health_checks_on_private_addresses(api, settings):
    settings.EGRESS_ALLOW_PRIVATE, settings.EGRESS_ALLOW_NETWORKS = False, []  # production policy
    create_service(api)
    checks = [
        {**HTTP, "method": "head", "headers": {"Authorization": "Bearer s3cret", "Accept": "application/json"}},
        {"name": "db", "kind": "custom", "probe": "redis", "params": {"password": "hunter2", "host": "10.0.0.7"}},
        {"name": "body", "kind": "http", "path": "http://127.0.0.1:9/health", "store_body": True},
    ]
    response = register(api, address="127.0.0.1", checks=checks)
    assert response.status_code == 201, response.json()
    stored = Check.objects.get(name="c")
    assert stored.method == "HEAD" and stored.headers["Authorization"] == "Bearer s3cret"
    assert Check.objects.get(name="body").store_body and not stored.store_body


def test_check_credentials_are_masked_in_reads(api):
    create_service(api)
    checks = [
        {**HTTP, "headers": {"Authorization": "Bearer s3cret", "X-Api-Key": "k3y", "Accept": "text/plain"}},
        {"name": "db", "kind": "custom", "probe": "redis", "params": {"password": "hunter2"}},
    ]
    assert register(api, checks=checks).status_code == 201
    reader = key_client("registry:read")
    for check in Check.objects.all():
        body = reader.get(f"/api/v1/checks/{check.pk}/").content.decode()
        assert "s3cret" not in body and "k3y" not in body and "hunter2" not in body
    http = reader.get(f"/api/v1/checks/{Check.objects.get(name='c').pk}/").json()
    assert http["headers"] == {"Authorization": "********", "X-Api-Key": "********", "Accept": "text/plain"}
    assert "store_body" in http and http["store_body"] is False
