"""Every route under /api/v1/ refuses requests without a valid key (401) or without its scope (403).

The routes are discovered by walking the URL resolver, so a route added later without a scope
declaration (or reachable anonymously) fails this test.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from controlplane.access.models import APIKey
from tests.factories import APIKeyFactory

pytestmark = pytest.mark.django_db
METHODS = ["get", "post", "put", "patch", "delete"]


def _walk(patterns, prefix: str = ""):  # type: ignore[no-untyped-def]
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern)


def _concrete(route: str) -> str:
    """Fill converters and regex groups with plausible values: <int:pk> -> 1, anything else -> demo."""
    route = re.sub(r"\(\?P<pk>[^)]*\)", "1", route)
    route = re.sub(r"\(\?P<[a-z_]+>[^)]*\)", "demo", route)
    route = re.sub(r"<int:[^>]+>", "1", route)
    route = re.sub(r"<[a-z_]+:[^>]+>|<[a-z_]+>", "demo", route)
    route = route.replace("^", "").replace("$", "").replace("\\.", ".")
    return "/" + route


def api_routes() -> list[str]:
    raw = [r for r in _walk(get_resolver().url_patterns) if r.startswith("api/v1/") and "(?P<format>" not in r]
    routes = sorted({_concrete(r) for r in raw})
    assert len(routes) >= 5, routes
    return routes


ROUTES = api_routes()


def _client(header: str | None) -> APIClient:
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)
    return client


def _assert_problem(response, status: int) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == status, (response.request["PATH_INFO"], response.status_code, response.content[:300])
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["request_id"] and body["title"] and "detail" in body


@pytest.fixture
def keys():  # type: ignore[no-untyped-def]
    good, good_raw = APIKeyFactory.create_with_plaintext(scopes=["admin"])
    _, expired_raw = APIKeyFactory.create_with_plaintext(
        scopes=["admin"], expiry_date=timezone.now() - timedelta(seconds=1)
    )
    revoked, revoked_raw = APIKeyFactory.create_with_plaintext(scopes=["admin"])
    APIKey.objects.filter(pk=revoked.pk).update(revoked=True)
    _, unscoped_raw = APIKeyFactory.create_with_plaintext(scopes=[])
    return {
        "missing": None,
        "malformed": "Api-Key not-a-key",
        "wrong scheme": f"Bearer {good_raw}",
        "wrong secret": f"Api-Key {good.prefix}.{'x' * 32}",
        "expired": f"Api-Key {expired_raw}",
        "revoked": f"Api-Key {revoked_raw}",
        "no scope": f"Api-Key {unscoped_raw}",
    }


@pytest.mark.parametrize("route", ROUTES)
def test_every_api_route_needs_a_valid_key_and_scope(route: str, keys) -> None:  # type: ignore[no-untyped-def]
    for case, header in keys.items():
        client = _client(header)
        for method in METHODS:
            response = getattr(client, method)(route, {}, format="json")
            if response.status_code == 405 and method.upper() not in response.get("Allow", ""):
                _assert_problem(response, 405)  # a method the route does not have at all: nothing reached
                continue
            _assert_problem(response, 403 if case == "no scope" else 401)


def test_x_api_key_header_is_accepted(keys) -> None:  # type: ignore[no-untyped-def]
    _, raw = APIKeyFactory.create_with_plaintext(scopes=["events:read"])
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=raw)
    assert client.get("/api/v1/events/").status_code == 200
    client.credentials(HTTP_X_API_KEY=raw[:-1] + ("a" if raw[-1] != "a" else "b"))
    _assert_problem(client.get("/api/v1/events/"), 401)


def test_revoked_key_is_refused_on_the_very_next_request(admin_api) -> None:  # type: ignore[no-untyped-def]
    key, raw = APIKeyFactory.create_with_plaintext(scopes=["events:read"])
    client = _client(f"Api-Key {raw}")
    assert client.get("/api/v1/events/").status_code == 200
    assert admin_api.post(f"/api/v1/keys/{key.prefix}/revoke/").status_code == 200
    _assert_problem(client.get("/api/v1/events/"), 401)
