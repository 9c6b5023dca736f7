"""The admin: CAS on the entry form, layers and winners, masked secrets, rollback action, pending diff."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from configstore import selectors, services
from configstore.models import Entry, Revision


@pytest.fixture
def admin_client(db) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("op", "op@example.com", "pw"))
    return client


def _change(admin_client, entry, value, expected, **extra):  # type: ignore[no-untyped-def]
    return admin_client.post(
        f"/admin/configstore/entry/{entry.pk}/change/",
        {"value": json.dumps(value), "description": "", "expected_revision": expected, **extra},
    )


def test_a_stale_admin_save_is_refused(admin_client, namespace):
    services.config_entry_set(namespace=namespace, key="a", value=1, actor="t")
    entry = Entry.objects.get(key="a")
    page = admin_client.get(f"/admin/configstore/entry/{entry.pk}/change/")
    assert page.status_code == 200 and 'name="expected_revision" value="1"' in page.content.decode()
    services.config_entry_set(namespace=namespace, key="a", value=2, actor="someone-else")
    response = _change(admin_client, entry, 3, expected=1)
    assert response.status_code == 200 and "Someone changed this entry" in response.content.decode()
    assert selectors.config_value("payments", "a") == 2
    assert _change(admin_client, entry, 3, expected=2).status_code == 302
    assert selectors.config_value("payments", "a") == 3
    assert Revision.objects.get(number=3).actor == "user:op" and Revision.objects.get(number=3).origin == "admin"


def test_the_entry_page_shows_every_layer_and_the_winner_and_masks_secrets(admin_client, namespace, source_root):
    services.config_entry_set(namespace=namespace, key="db.host", value="from-db", actor="t")
    services.config_entry_set(namespace=namespace, key="pw", value="hunter2", secret=True, actor="t")
    (source_root / "app.yaml").write_text("db:\n  host: from-file\n")
    source = services.source_create(namespace=namespace, name="app", kind="file", path="app.yaml", actor="t")
    services.source_reload(source=source, actor="t")
    entry = Entry.objects.get(key="db.host", source__isnull=True)
    page = admin_client.get(f"/admin/configstore/entry/{entry.pk}/change/").content.decode()
    assert "file:app" in page and "from-file" in page and "wins" in page and "overridden" in page
    listing = admin_client.get("/admin/configstore/entry/").content.decode()
    assert "hunter2" not in listing and "********" in listing
    secret = Entry.objects.get(key="pw")
    assert "hunter2" not in admin_client.get(f"/admin/configstore/entry/{secret.pk}/change/").content.decode()
    # Saving the form with the mask untouched keeps the secret; unticking "secret" needs a real value.
    assert _change(admin_client, secret, "********", expected=secret.revision, secret="on").status_code == 302
    assert selectors.config_value("payments", "pw") == "hunter2"
    refused = _change(admin_client, secret, "********", expected=secret.revision)
    assert refused.status_code == 200 and "stops being secret" in refused.content.decode()
    assert selectors.config_value("payments", "pw") == "hunter2"


def test_rollback_action(admin_client, namespace):
    services.config_entry_set(namespace=namespace, key="a", value=1, actor="t")
    services.config_entry_set(namespace=namespace, key="a", value=2, actor="t")
    target = Revision.objects.get(number=1)
    response = admin_client.post(
        "/admin/configstore/revision/", {"action": "rollback_to", "_selected_action": [target.pk]}, follow=True
    )
    assert "as revision 3" in response.content.decode()
    assert selectors.config_value("payments", "a") == 1
    assert "a" in admin_client.get(f"/admin/configstore/revision/{target.pk}/change/").content.decode()


def test_source_page_shows_pending_diff_and_reload_now_applies_it(admin_client, namespace, source_root):
    (source_root / "app.yaml").write_text("a: 1\n")
    source = services.source_create(namespace=namespace, name="app", kind="file", path="app.yaml", actor="t")
    services.source_reload(source=source, actor="t")
    (source_root / "app.yaml").write_text("a: 2\n")
    page = admin_client.get(f"/admin/configstore/source/{source.pk}/change/").content.decode()
    assert "pending changes" in page.lower() and "<td>update</td>" in page
    admin_client.post("/admin/configstore/source/", {"action": "reload_now", "_selected_action": [source.pk]})
    assert selectors.config_value("payments", "a") == 2


def test_admin_rule_form_uses_the_rule_engine(admin_client, namespace):
    response = admin_client.post(
        "/admin/configstore/rule/add/",
        {"namespace": namespace.pk, "key": "db.port", "kind": "range", "params": '{"min": "x"}', "message": ""},
    )
    assert response.status_code == 200 and "min must be a number" in response.content.decode()
    response = admin_client.post(
        "/admin/configstore/rule/add/",
        {"namespace": namespace.pk, "key": "db.port", "kind": "range", "params": '{"min": 1}', "message": ""},
    )
    assert response.status_code == 302
    namespace.refresh_from_db()
    assert namespace.rules_version == 1


def test_admin_source_form_refuses_paths_outside_the_root(admin_client, namespace, source_root):
    response = admin_client.post(
        "/admin/configstore/source/add/",
        {
            "namespace": namespace.pk,
            "name": "x",
            "kind": "file",
            "path": "../etc/passwd",
            "format": "yaml",
            "priority": 200,
            "enabled": "on",
        },
    )
    assert response.status_code == 200 and "must not contain" in response.content.decode()
