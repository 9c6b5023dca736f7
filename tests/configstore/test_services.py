"""The change-set service: validation of the whole set, one revision, events, signal, rollback, secrets."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from configstore import selectors, services
from configstore.models import MASK, Entry, Revision
from configstore.services import EntryChange
from configstore.signals import config_changed
from controlplane.errors import PreconditionFailed
from controlplane.events.models import Event


def apply(namespace, **values):  # type: ignore[no-untyped-def]
    changes = [EntryChange(key=k.replace("__", "."), value=v) for k, v in values.items()]
    return services.config_changes_apply(namespace=namespace, changes=changes, actor="test", origin="test")


def test_a_change_set_is_one_revision_with_changes_and_an_event(namespace):
    revision = apply(namespace, db__host="h", db__port=5432)
    namespace.refresh_from_db()
    assert (revision.number, namespace.revision) == (1, 1)
    assert [(c["key"], c["action"], c["new"]) for c in revision.changes] == [
        ("db.host", "create", "h"),
        ("db.port", "create", 5432),
    ]
    event = Event.objects.get(kind="config.changed")
    assert event.data["keys"] == ["db.host", "db.port"] and event.data["revision"] == 1
    assert selectors.config_effective("payments") == {"db": {"host": "h", "port": 5432}}
    assert selectors.config_value("payments", "db.port") == 5432
    assert selectors.config_value("payments", "db") == {"host": "h", "port": 5432}
    assert selectors.config_value("payments", "nope", "dflt") == "dflt"


def test_every_error_is_reported_and_nothing_is_applied(namespace, add_rule):
    apply(namespace, keep="me")
    add_rule("db.port", "range", min=1, max=65535)
    add_rule("db.host", "required")
    with pytest.raises(ValidationError) as caught:
        apply(namespace, db__port=70000, Bad_Key=1, currency="EUR")
    errors = caught.value.message_dict
    assert set(errors) == {"db.port", "Bad_Key", "db.host"}
    assert "range rule" in errors["db.port"][0]
    assert "is required" in errors["db.host"][0]
    namespace.refresh_from_db()
    assert namespace.revision == 1
    assert selectors.config_effective("payments") == {"keep": "me"}
    assert Revision.objects.filter(namespace=namespace).count() == 1


@pytest.mark.parametrize(
    "key", ["history", "import", "rollback", "rules", "sources", "watch", "UPPER", "a..b", ".a", "a-b", ""]
)
def test_invalid_and_reserved_keys_are_refused(namespace, key):
    with pytest.raises(ValidationError):
        services.config_entry_set(namespace=namespace, key=key, value=1, actor="test")
    assert not Entry.objects.exists()


def test_reserved_words_may_be_sections(namespace):
    services.config_entry_set(namespace=namespace, key="history.size", value=10, actor="test")
    assert selectors.config_effective("payments") == {"history": {"size": 10}}


def test_a_key_cannot_be_both_a_value_and_a_section(namespace):
    apply(namespace, db=1)
    with pytest.raises(ValidationError) as caught:
        apply(namespace, db__port=2)
    assert "db.port" in caught.value.message_dict


def test_a_no_op_creates_no_revision(namespace):
    apply(namespace, a=1, b=[1, 2])
    assert apply(namespace, a=1, b=[1, 2]) is None
    namespace.refresh_from_db()
    assert namespace.revision == 1


def test_compare_and_swap_on_the_entry_revision(namespace):
    services.config_entry_set(namespace=namespace, key="n", value=1, actor="t", expected_revision=0)
    with pytest.raises(PreconditionFailed):
        services.config_entry_set(namespace=namespace, key="n", value=2, actor="t", expected_revision=0)
    services.config_entry_set(namespace=namespace, key="n", value=2, actor="t", expected_revision=1)
    with pytest.raises(PreconditionFailed):
        services.config_entry_delete(namespace=namespace, key="n", actor="t", expected_revision=1)
    assert selectors.config_value("payments", "n") == 2


def test_secrets_are_encrypted_at_rest_and_masked_in_history_and_events(namespace):
    services.config_entry_set(namespace=namespace, key="api_key", value="sk-live-123", secret=True, actor="t")
    services.config_entry_set(namespace=namespace, key="api_key", value="sk-live-456", actor="t")
    with connection.cursor() as cursor:
        cursor.execute("SELECT value, encrypted_value FROM configstore_entry")
        raw = repr(cursor.fetchall())
    assert "sk-live" not in raw
    assert "sk-live" not in repr(list(Revision.objects.values_list("changes", flat=True)))
    assert "sk-live" not in repr(list(Event.objects.values_list("data", flat=True)))
    assert selectors.public_changes(Revision.objects.get(number=2))[0]["old"] == MASK
    assert selectors.config_value("payments", "api_key") == "sk-live-456"
    assert selectors.config_snapshot("payments").visible_flat(reveal=False) == {"api_key": MASK}


def test_the_mask_keeps_a_stored_secret(namespace):
    services.config_entry_set(namespace=namespace, key="pw", value="hunter2", secret=True, actor="t")
    assert services.config_entry_set(namespace=namespace, key="pw", value=MASK, actor="t") is None
    assert selectors.config_value("payments", "pw") == "hunter2"


def test_rollback_restores_the_old_effective_config_as_a_new_revision(namespace):
    apply(namespace, a=1, b="x")
    services.config_entry_set(namespace=namespace, key="pw", value="s3cret", secret=True, actor="t")
    apply(namespace, a=2, c=True)
    services.config_entry_delete(namespace=namespace, key="pw", actor="t")
    at_two = {"a": 1, "b": "x", "pw": "s3cret"}
    revision = services.config_rollback(namespace=namespace, to_revision=2, actor="t")
    assert revision.number == 5 and revision.origin == "rollback"
    assert selectors.config_effective("payments") == at_two
    assert list(Revision.objects.filter(namespace=namespace).values_list("number", flat=True)) == [5, 4, 3, 2, 1]
    services.config_rollback(namespace=namespace, to_revision=0, actor="t")
    assert selectors.config_effective("payments") == {}
    services.config_rollback(namespace=namespace, to_revision=3, actor="t")
    assert selectors.config_effective("payments") == {"a": 2, "b": "x", "c": True, "pw": "s3cret"}
    with pytest.raises(ValidationError):
        services.config_rollback(namespace=namespace, to_revision=99, actor="t")


def test_config_changed_signal_is_sent_on_commit(namespace, django_capture_on_commit_callbacks):
    received = []

    def receiver(sender, **kwargs):  # type: ignore[no-untyped-def]
        received.append(kwargs)

    config_changed.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            apply(namespace, x=1)
            assert received == []
    finally:
        config_changed.disconnect(receiver)
    assert received == [{"signal": config_changed, "namespace": "payments", "revision": 1, "keys": ["x"]}]


def test_import_is_all_or_nothing_and_export_import_is_a_no_op(namespace, add_rule):
    add_rule("db.port", "type", type="integer")
    with pytest.raises(ValidationError):
        services.config_import(namespace=namespace, text="db:\n  port: x\n  host: h\n", fmt="yaml", actor="t")
    assert not Entry.objects.exists()
    services.config_import(
        namespace=namespace, text="db:\n  port: 1\n  host: h\nlimits: {a: 1}\n", fmt="yaml", actor="t"
    )
    services.config_entry_set(namespace=namespace, key="pw", value="s", secret=True, actor="t")
    from configstore.formats import render_document

    for fmt in ("yaml", "json", "ini", "toml", "env"):
        for reveal in (True, False):
            text = render_document(selectors.config_snapshot("payments").visible_flat(reveal=reveal), fmt)
            assert services.config_import(namespace=namespace, text=text, fmt=fmt, actor="t") is None, (fmt, text)
    namespace.refresh_from_db()
    assert namespace.revision == 2


@pytest.mark.django_db(transaction=True)
def test_rules_compile_once_per_rules_version(namespace, add_rule):
    add_rule("n", "type", type="integer")
    first = selectors.namespace_ruleset(namespace)
    namespace.refresh_from_db()
    assert selectors.namespace_ruleset(namespace) is first
    add_rule("n", "range", min=0)
    namespace.refresh_from_db()
    assert selectors.namespace_ruleset(namespace) is not first


def test_demo_data_is_idempotent(db):
    from configstore.demo import load_demo

    first = load_demo()
    second = load_demo()
    assert first.revision == second.revision == 1
    assert selectors.config_value("payments", "db.port") == 5432
    assert selectors.config_snapshot("payments").secret_keys == {"provider.api_key"}
