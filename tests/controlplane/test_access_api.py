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
