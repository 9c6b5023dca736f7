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
            pytest.skip(
                "needs PostgreSQL as the test database: runs in the production-mode pass (make test-production)"
            )


@pytest.fixture(autouse=True)
def _request_metrics_off(settings):  # type: ignore[no-untyped-def]
    """Per-route request metrics flush every few seconds of wall-clock time, after whichever response is
    being served: off in tests so no test's query count depends on timing (tests/monitoring turn them on)."""
    settings.MONITORING_REQUEST_METRICS = False


@pytest.fixture(scope="session", autouse=True)
def _drop_leftover_sessions(django_db_setup, django_db_blocker):  # type: ignore[no-untyped-def]
    """End sessions other threads left on the PostgreSQL test database, so it can be dropped at the end.

    The config watch hub's database threads and the live server keep persistent connections
    (`CONN_MAX_AGE`) that outlive the test which opened them.
    """
    yield
    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


FLUSH_ATTEMPTS = 5


@pytest.fixture(scope="session", autouse=True)
def _flush_retries_a_deadlock():  # type: ignore[no-untyped-def]
    """Repeat a transactional test's closing TRUNCATE when PostgreSQL picks it as a deadlock's victim.

    Child processes started by a test (gunicorn, uvicorn, a Celery worker) keep writing in the background:
    request metrics every few seconds, check results, deliveries. TRUNCATE locks every table in turn, so a
    child's transaction that holds one table and waits on another can close a cycle with it, and
    PostgreSQL aborts one side. The flush runs in its own transaction, so trying it again is safe; the
    child's write, if it was the one aborted, is its own to retry. (CI saw this once: 1 error in 2,507.)
    """
    from django.db.backends.postgresql.operations import DatabaseOperations
    from psycopg import errors

    original = DatabaseOperations.execute_sql_flush

    def execute_sql_flush(self, sql_list):  # type: ignore[no-untyped-def]
        for attempt in range(1, FLUSH_ATTEMPTS + 1):
            try:
                return original(self, sql_list)
            except Exception as exc:  # noqa: BLE001 - Django wraps psycopg's error; the cause says which
                if attempt == FLUSH_ATTEMPTS or not isinstance(exc.__cause__ or exc, errors.DeadlockDetected):
                    raise
        return None

    DatabaseOperations.execute_sql_flush = execute_sql_flush  # type: ignore[method-assign]
    yield
    DatabaseOperations.execute_sql_flush = original  # type: ignore[method-assign]


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


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for a child process (worker, gunicorn, uvicorn) that must see the test database.

    The child uses the same settings as this process, pointed at the test database that pytest-django
    created, and the same generated secrets.
    """
    from django.conf import settings

    env = dict(os.environ)
    name = connection.settings_dict["NAME"]
    if connection.vendor == "sqlite":
        env["CONTROLPLANE_SQLITE_PATH"] = str(name)
        env.pop("DATABASE_URL", None)
    else:
        params = connection.settings_dict
        env["DATABASE_URL"] = (
            f"postgres://{params['USER']}@{params['HOST'] or '127.0.0.1'}:{params['PORT'] or 5432}/{name}"
        )
    env["SECRET_KEY"] = settings.SECRET_KEY
    env["CONFIG_ENCRYPTION_KEY"] = settings.CONFIG_ENCRYPTION_KEY
    env["CONTROLPLANE_VAR_DIR"] = str(settings.VAR_DIR)
    env["PYTHONUNBUFFERED"] = "1"
    # The child follows the egress policy the test set (e.g. its loopback receiver allow-listed), not the defaults.
    env["EGRESS_ALLOW_NETWORKS"] = ",".join(settings.EGRESS_ALLOW_NETWORKS)
    env["EGRESS_ALLOW_PRIVATE"] = "true" if settings.EGRESS_ALLOW_PRIVATE else "false"
    env.update(extra)
    return env


@pytest.fixture
def celery_worker_process(transactional_db, tmp_path):  # type: ignore[no-untyped-def]
    """A real Celery worker (separate process) on the configured broker and the test database.

    Use with `@pytest.mark.django_db(transaction=True)` so rows the test writes are committed and
    visible to the worker. The queue is purged first so messages left by earlier tests do not run.
    """
    import subprocess
    import time

    from controlplane.celery import app

    app.control.purge()
    log_path = tmp_path / "worker.log"
    log = open(log_path, "w")  # noqa: SIM115
    from controlplane.commandlines import celery_worker

    process = subprocess.Popen(
        celery_worker(concurrency=2, name=f"test-{os.getpid()}"),  # every queue, as serve's workers together
        env=subprocess_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"worker exited: {log_path.read_text()[-2000:]}")
        if "ready." in log_path.read_text():
            break
        time.sleep(0.2)
    else:
        process.kill()
        raise RuntimeError(f"worker did not start: {log_path.read_text()[-2000:]}")
    process.log_path = log_path  # type: ignore[attr-defined]
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
