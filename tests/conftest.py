"""Shared fixtures: API clients with scoped keys, live-service gates for PostgreSQL and Redis.

PostgreSQL- and Redis-backed tests run when the services are reachable and are skipped with a reason
otherwise; with CI=true a missing service is a failure, not a skip.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import pytest
from django.db import connection
from rest_framework.test import APIClient

from tests.factories import APIKeyFactory

CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, url: str, port: int) -> None:
    """Skip (or, in CI, fail) when a backing service is not reachable."""
    if reachable(url, port):
        return
    message = f"{name} is not reachable at {url}"
    if CI:
        pytest.fail(f"{message} (required when CI=true)")
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _service_gates(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("redis"):
        require_service("Redis", REDIS_URL, 6379)
    if request.node.get_closest_marker("postgres"):
        require_service("PostgreSQL", POSTGRES_URL, 5432)
        if "django_db_setup" in request.fixturenames and connection.vendor != "postgresql":
            pytest.skip("needs PostgreSQL as the test database: runs in the production-mode pass (make test-production)")


def key_client(*scopes: str, **key_fields) -> APIClient:  # type: ignore[no-untyped-def]
    """An APIClient authenticated with a fresh key holding `scopes`."""
    _, raw = APIKeyFactory.create_with_plaintext(scopes=list(scopes), **key_fields)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    client.raw_key = raw  # type: ignore[attr-defined]
    return client


@pytest.fixture
def client_for(db):  # type: ignore[no-untyped-def]
    """Factory fixture: `client_for("registry:read", "registry:write")` -> an authenticated APIClient."""
    return key_client


@pytest.fixture
def admin_api(db) -> APIClient:  # type: ignore[no-untyped-def]
    """An APIClient whose key holds the `admin` scope."""
    return key_client("admin")
