"""One real control plane per test package run (started once: the machine has 2 cores), shared by the
client tests; tests that stop or restart it bring it back before they end."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.core.management.sql import emit_post_migrate_signal

from tests.clients.controlplane import ControlPlane
from tests.conftest import subprocess_env
from tests.factories import APIKeyFactory

#: The tests talk to the server over HTTP and never hold a transaction (a test-wide one would hold SQLite's
#: write lock against the server); pytest-django still has to create the test database for them. With
#: `available_apps`, a transactional test's teardown flushes only the sessions table, not the keys and
#: schedules the shared server relies on.
DB = pytest.mark.django_db(transaction=True, available_apps=["django.contrib.sessions"])


@pytest.fixture(scope="package")
def cp(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[ControlPlane]:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("cp")
    with django_db_blocker.unblock():
        # Transactional tests elsewhere flush the database; put the default schedules (beat's TTL expiry
        # and check dispatch) back as a fresh install has them.
        emit_post_migrate_signal(verbosity=0, interactive=False, db="default")
        _, admin_key = APIKeyFactory.create_with_plaintext(scopes=["admin"], rate="1000000/m")
    env = subprocess_env(CONTROLPLANE_VAR_DIR=str(tmp / "var"))
    plane = ControlPlane(env, tmp, production=settings.PRODUCTION)
    plane.admin_key = admin_key
    plane.start()
    try:
        yield plane
    finally:
        if plane.process is not None and plane.process.poll() is None:
            plane.stop()


@pytest.fixture
def name() -> str:
    """A unique, URL-safe name: tests share one database and never clean up behind a running server."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def namespace(cp: ControlPlane, name: str) -> str:
    with cp.client() as admin:
        admin.namespace_create(name, "client tests")
    return name
