"""`updated_at` of entries and namespaces moves on every change, whatever path the change takes (the change
set writes with `.update()` and `bulk_update`, which skip `auto_now`)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from configstore import services
from configstore.models import Entry, Namespace, Rule

LONG_AGO = timezone.now() - timedelta(days=30)


def _age(namespace: Namespace) -> None:
    """Put the namespace and every entry in it thirty days back."""
    Namespace.objects.filter(pk=namespace.pk).update(updated_at=LONG_AGO)
    Entry.objects.filter(namespace=namespace).update(updated_at=LONG_AGO)


def _namespace_moved(namespace: Namespace, since) -> bool:  # type: ignore[no-untyped-def]
    return Namespace.objects.get(pk=namespace.pk).updated_at >= since


def _entry_time(namespace: Namespace, key: str):  # type: ignore[no-untyped-def]
    return Entry.objects.get(namespace=namespace, key=key, source=None).updated_at


@pytest.mark.parametrize(
    "change",
    [
        {"value": "new"},  # a new value
        {"value": "old", "description": "now described"},  # only the description
        {"value": "old", "secret": True},  # the secret flag
    ],
    ids=["value", "description", "secret"],
)
def test_an_entry_change_moves_the_entry_and_its_namespace(namespace, change) -> None:  # type: ignore[no-untyped-def]
    services.config_entry_set(namespace=namespace, key="db.host", value="old", actor="t")
    services.config_entry_set(namespace=namespace, key="other", value=1, actor="t")
    _age(namespace)
    before = timezone.now()
    services.config_entry_set(namespace=namespace, key="db.host", actor="t", **change)
    assert _entry_time(namespace, "db.host") >= before
    assert _namespace_moved(namespace, before)
    assert _entry_time(namespace, "other") == LONG_AGO  # untouched keys keep their time


def test_delete_import_and_rollback_move_the_namespace_and_the_entries_they_write(namespace) -> None:  # type: ignore[no-untyped-def]
    services.config_import(namespace=namespace, text='{"a": 1, "b": 2, "c": 3}', fmt="json", actor="t")
    _age(namespace)

    before = timezone.now()
    services.config_entry_delete(namespace=namespace, key="c", actor="t")
    assert _namespace_moved(namespace, before)
    _age(namespace)

    before = timezone.now()
    services.config_import(namespace=namespace, text='{"a": 10, "b": 2}', fmt="json", actor="t")
    assert _entry_time(namespace, "a") >= before
    assert _entry_time(namespace, "b") == LONG_AGO  # same value: not a change
    assert _namespace_moved(namespace, before)
    _age(namespace)

    before = timezone.now()
    services.config_rollback(namespace=namespace, to_revision=1, actor="t")
    assert _entry_time(namespace, "a") >= before
    assert _entry_time(namespace, "c") >= before  # restored
    assert _namespace_moved(namespace, before)


def test_a_large_import_moves_every_entry_it_writes(namespace) -> None:  # type: ignore[no-untyped-def]
    # 600 keys: PostgreSQL inserts them with COPY, and the re-import updates them with bulk_update.
    body = "{" + ", ".join(f'"k{n}": {n}' for n in range(600)) + "}"
    services.config_import(namespace=namespace, text=body, fmt="json", actor="t")
    _age(namespace)
    before = timezone.now()
    changed = "{" + ", ".join(f'"k{n}": {n + 1}' for n in range(600)) + ', "fresh": true}'
    services.config_import(namespace=namespace, text=changed, fmt="json", actor="t")
    times = set(Entry.objects.filter(namespace=namespace).values_list("updated_at", flat=True))
    assert min(times) >= before, min(times)
    assert _namespace_moved(namespace, before)


def test_a_source_reload_moves_the_namespace_and_its_entries(namespace, source_root) -> None:  # type: ignore[no-untyped-def]
    (source_root / "app.yaml").write_text("db:\n  port: 1\n")
    source = services.source_create(namespace=namespace, name="app", kind="file", path="app.yaml", actor="t")
    services.source_reload(source=source, actor="t")
    _age(namespace)
    before = timezone.now()
    (source_root / "app.yaml").write_text("db:\n  port: 2\n")
    assert services.source_reload(source=source, actor="t").status == "applied"
    assert Entry.objects.get(namespace=namespace, key="db.port", source=source).updated_at >= before
    assert _namespace_moved(namespace, before)


def test_rule_changes_move_the_namespace(namespace, add_rule) -> None:  # type: ignore[no-untyped-def]
    _age(namespace)
    before = timezone.now()
    rule = add_rule("db.port", "range", min=1, max=65535)
    assert _namespace_moved(namespace, before)
    _age(namespace)
    before = timezone.now()
    services.rule_update(rule=rule, params={"min": 2, "max": 65535}, actor="t")
    assert _namespace_moved(namespace, before)
    _age(namespace)
    before = timezone.now()
    services.rule_delete(rule=Rule.objects.get(pk=rule.pk), actor="t")
    assert _namespace_moved(namespace, before)


def test_the_api_shows_the_moved_times(namespace, client_for) -> None:  # type: ignore[no-untyped-def]
    services.config_entry_set(namespace=namespace, key="db.host", value="old", actor="t")
    _age(namespace)
    api = client_for("config:read", "config:write")
    before = timezone.now()
    response = api.put("/api/v1/config/payments/db.host/", {"value": "new"}, format="json")
    assert response.status_code == 200, response.content
    entry = api.get("/api/v1/config/payments/db.host/").json()
    assert parse_datetime(entry["updated_at"]) >= before
    listed = api.get("/api/v1/config/").json()
    rows = listed["results"] if isinstance(listed, dict) else listed
    row = next(r for r in rows if r["name"] == "payments")
    assert parse_datetime(row["updated_at"]) >= before
