"""API keys over the API and the basic auth/scope/error contract."""

import pytest

from controlplane.access.models import APIKey
from tests.conftest import key_client

pytestmark = pytest.mark.django_db


def test_created_key_is_returned_once_and_works(admin_api):
    response = admin_api.post("/api/v1/keys/", {"name": "svc", "scopes": ["registry:read"]}, format="json")
    assert response.status_code == 201
    raw = response.json()["key"]
    listed = admin_api.get("/api/v1/keys/").json()["results"]
    assert all("key" not in item for item in listed)
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_X_API_KEY=raw)
    assert client.get("/api/v1/keys/").status_code == 403  # authenticated, lacks admin


def test_unknown_scope_is_a_field_error(admin_api):
    response = admin_api.post("/api/v1/keys/", {"name": "svc", "scopes": ["nope"]}, format="json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert "scopes.0" in response.json()["errors"]
    assert APIKey.objects.count() == 1


def test_revoke_takes_effect_on_next_request(admin_api):
    target = key_client("events:read")
    assert target.get("/api/v1/events/").status_code == 200
    prefix = APIKey.objects.get(scopes=["events:read"]).prefix
    assert admin_api.post(f"/api/v1/keys/{prefix}/revoke/").status_code == 200
    response = target.get("/api/v1/events/")
    assert response.status_code == 401
    assert response.json()["detail"] == "The API key has been revoked."


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"rate": "0/m"}, "rate"),
        ({"rate": "0/h"}, "rate"),
        ({"rate": "000/s"}, "rate"),
        ({"rate": "10/0m"}, "rate"),
        ({"rate": "-1/m"}, "rate"),
        ({"rate": "9999999999/s"}, "rate"),
        ({"namespaces": ["../x", "NOPE!"]}, "namespaces"),
        ({"namespaces": ["billing", "a/b"]}, "namespaces"),
        ({"namespaces": ["x" * 65]}, "namespaces"),
        ({"namespaces": ["billing", ""]}, "namespaces"),
    ],
)
def test_unusable_rates_and_namespace_limits_are_refused(admin_api, fields, field):  # type: ignore[no-untyped-def]
    response = admin_api.post("/api/v1/keys/", {"name": "svc", "scopes": ["config:read"], **fields}, format="json")
    assert response.status_code == 400, response.json()
    assert response["Content-Type"] == "application/problem+json"
    assert any(name == field or name.startswith(f"{field}.") for name in response.json()["errors"])
    assert APIKey.objects.count() == 1  # only the admin key


def test_sane_rates_and_namespace_limits_are_accepted(admin_api):
    for rate, namespaces in (("1/s", ["billing"]), ("1000/5m", ["a", "orders-v2", "x_y"]), ("", [])):
        body = {"name": "svc", "scopes": ["config:read"], "rate": rate, "namespaces": namespaces}
        response = admin_api.post("/api/v1/keys/", body, format="json")
        assert response.status_code == 201, response.json()
        assert response.json()["rate"] == rate and response.json()["namespaces"] == sorted(namespaces)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rate", "0/m"], "rate:"),
        (["--rate", "3/0h"], "rate:"),
        (["--namespaces", "../x,NOPE!"], "namespaces:"),
    ],
)
def test_create_api_key_command_uses_the_same_rule(args, message):  # type: ignore[no-untyped-def]
    from django.core.management import call_command
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match=message):
        call_command("create_api_key", "--name", "svc", "--scopes", "config:read", *args)
    assert not APIKey.objects.filter(name="svc").exists()


def test_revoke_api_key_command_revokes_or_deletes_with_events(capsys):  # type: ignore[no-untyped-def]
    from django.core.management import call_command
    from django.core.management.base import CommandError

    from controlplane.events.models import Event
    from tests.factories import APIKeyFactory

    kept, gone = APIKeyFactory(), APIKeyFactory()
    call_command("revoke_api_key", kept.prefix)
    call_command("revoke_api_key", gone.prefix, "--delete")
    kept.refresh_from_db()
    assert kept.revoked and not APIKey.objects.filter(pk=gone.pk).exists()
    assert Event.objects.filter(kind="apikey.revoked", subject=kept.prefix, actor="cli").exists()
    assert Event.objects.filter(kind="apikey.deleted", subject=gone.prefix, actor="cli").exists()
    with pytest.raises(CommandError, match="No API key"):
        call_command("revoke_api_key", "nOsUcH00")
