"""The closing flush of a transactional test survives being a deadlock's victim (tests/conftest.py).

A second session plays the background writer of a child process: it holds the last table that
TRUNCATE locks and, once the flush waits on it, asks for the first one. PostgreSQL aborts the session
that detects the cycle; the flush's session is made the one that looks first (a short
`deadlock_timeout`), so without the retry the flush fails every time.
"""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.color import no_style
from django.db import connection

from controlplane.access.models import APIKey
from tests.factories import APIKeyFactory

pytestmark = [pytest.mark.postgres]


def _flushed_tables() -> list[str]:
    sql = connection.ops.sql_flush(
        no_style(), connection.introspection.django_table_names(only_existing=True, include_views=False)
    )
    truncate = next(statement for statement in sql if statement.startswith("TRUNCATE"))
    return [name.strip().strip('"') for name in truncate.removeprefix("TRUNCATE").split(";")[0].split(",")]


def _session() -> psycopg.Connection:
    """A second session on the test database, outside Django."""
    params = connection.settings_dict
    return psycopg.connect(
        host=params["HOST"] or "127.0.0.1", port=params["PORT"] or 5432, user=params["USER"], dbname=params["NAME"]
    )


@pytest.mark.django_db(transaction=True)
def test_a_flush_chosen_as_a_deadlock_victim_is_tried_again() -> None:
    tables = _flushed_tables()
    first, last = tables[0], tables[-1]
    writer = _session()
    writer.execute("SET deadlock_timeout = '10s'")
    writer.execute(f'LOCK TABLE "{last}" IN ROW EXCLUSIVE MODE')
    flush_waiting = threading.Event()

    def close_the_cycle() -> None:
        deadline = time.monotonic() + 10
        with _session() as watcher:
            while time.monotonic() < deadline:
                row = watcher.execute(
                    "SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
                    " WHERE NOT l.granted AND c.relname = %s",
                    [last],
                ).fetchone()
                if row:
                    flush_waiting.set()
                    break
                time.sleep(0.02)
        try:
            writer.execute(f'LOCK TABLE "{first}" IN ROW EXCLUSIVE MODE')
        finally:
            writer.rollback()

    APIKeyFactory()
    with connection.cursor() as cursor:
        cursor.execute("SET deadlock_timeout = '100ms'")
    thread = threading.Thread(target=close_the_cycle)
    thread.start()
    try:
        call_command("flush", verbosity=0, interactive=False)
    finally:
        thread.join(timeout=20)
        writer.close()
        with connection.cursor() as cursor:
            cursor.execute("RESET deadlock_timeout")
    assert flush_waiting.is_set(), "the flush never waited on the writer's table: the test proved nothing"
    assert not APIKey.objects.exists()
