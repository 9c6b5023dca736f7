"""One authorization rule for every change path (issue #9 points 1 and 2).

A matrix: each path that can change a secret entry (API PUT/DELETE, import, import?replace, rollback, admin
add/change/delete/bulk delete/rollback, file source reload, env source reload) × a caller without the
secrets capability (refused, nothing applied) and one with it (applied); API keys limited to another
namespace get nothing on any path; the service refuses the same actors when called directly.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from django.test import Client, override_settings

from configstore import selectors, services
from configstore.access import ChangeNotAllowed, ConfigActor
from configstore.models import Entry, Namespace, Revision
from tests.configstore.factories import StaffUserFactory
from tests.conftest import key_client

ENTRY_PERMS = [
    "add_entry",
    "change_entry",
    "delete_entry",
    "view_entry",
    "view_revision",
    "view_source",
    "view_namespace",
    "delete_namespace",
    "delete_source",
    "delete_rule",
]


@pytest.fixture
def secret_ns(db, source_root):  # type: ignore[no-untyped-def]
    """`payments`: secret `pw` = hunter2 (revision 1) and plain `a` = 1 (revision 2)."""
    namespace = services.namespace_create(name="payments", actor="t")
    services.config_entry_set(namespace=namespace, key="pw", value="hunter2", secret=True, actor="t")
    services.config_entry_set(namespace=namespace, key="a", value=1, actor="t")
    (source_root / "app.yaml").write_text("pw: from-file\n")
    with override_settings(CONFIG_ENV_PREFIXES=["PAYMENTS_"]):
        yield namespace


def _api(who: str):  # type: ignore[no-untyped-def]
    scopes = ["config:read", "config:write"] + (["config:secrets"] if who == "secrets" else [])
    return key_client(*scopes, namespaces=["elsewhere"] if who == "limited" else [])


def _admin(who: str) -> Client:
    perms = ENTRY_PERMS + (["manage_secrets"] if who == "secrets" else [])
    client = Client()
    client.force_login(StaffUserFactory(perms=perms))
    return client


# Each path: (caller kind, namespace) -> HTTP status of the attempt.
def api_put(who: str, ns: Namespace) -> int:
    return _api(who).put("/api/v1/config/payments/pw/", {"value": "guess"}, format="json").status_code


def api_put_new_secret(who: str, ns: Namespace) -> int:
    body = {"value": "x", "secret": True}
    return _api(who).put("/api/v1/config/payments/token/", body, format="json").status_code


def api_put_unsecret(who: str, ns: Namespace) -> int:
    body = {"value": "now-plain", "secret": False}
    return _api(who).put("/api/v1/config/payments/pw/", body, format="json").status_code


def api_delete(who: str, ns: Namespace) -> int:
    return _api(who).delete("/api/v1/config/payments/pw/").status_code


def api_import(who: str, ns: Namespace) -> int:
    return _import(_api(who), "pw: guess\na: 1\n")


def api_import_replace(who: str, ns: Namespace) -> int:
    return _import(_api(who), "a: 2\n", "&replace=true")


def api_import_secret_section(who: str, ns: Namespace) -> int:
    # `pw` as a section would replace the secret value with a mapping.
    return _import(_api(who), "pw:\n  inner: 1\n")


def api_rollback_delete(who: str, ns: Namespace) -> int:
    # Back to revision 0: deletes the secret.
    return _api(who).post("/api/v1/config/payments/rollback/", {"revision": 0}, format="json").status_code


def api_rollback_restore(who: str, ns: Namespace) -> int:
    # Change the secret (as a trusted caller), then roll back to before: restores the old token.
    services.config_entry_set(namespace=ns, key="pw", value="changed", actor="t")
    return _api(who).post("/api/v1/config/payments/rollback/", {"revision": 2}, format="json").status_code


def api_file_reload(who: str, ns: Namespace) -> int:
    source = services.source_create(namespace=ns, name="app", kind="file", path="app.yaml", actor="op")
    return _api(who).post(f"/api/v1/config/payments/sources/{source.pk}/reload/").status_code


def api_env_reload(who: str, ns: Namespace) -> int:
    source = services.source_create(namespace=ns, name="env", kind="env", prefix="PAYMENTS_", actor="op")
    return _api(who).post(f"/api/v1/config/payments/sources/{source.pk}/reload/").status_code


def admin_add_secret(who: str, ns: Namespace) -> int:
    data = {
        "namespace": ns.pk,
        "key": "token",
        "value": '"x"',
        "secret": "on",
        "description": "",
        "expected_revision": 0,
    }
    response = _admin(who).post("/admin/configstore/entry/add/", data)
    return 201 if response.status_code == 302 else 403 if b"config:secrets" in response.content else 400


def admin_change(who: str, ns: Namespace) -> int:
    entry = Entry.objects.get(key="pw")
    data = {"value": '"guess"', "secret": "on", "description": "", "expected_revision": entry.revision}
    response = _admin(who).post(f"/admin/configstore/entry/{entry.pk}/change/", data)
    return 200 if response.status_code == 302 else response.status_code


def admin_delete(who: str, ns: Namespace) -> int:
    entry = Entry.objects.get(key="pw")
    response = _admin(who).post(f"/admin/configstore/entry/{entry.pk}/delete/", {"post": "yes"})
    return 204 if response.status_code == 302 else response.status_code


def admin_bulk_delete(who: str, ns: Namespace) -> int:
    ids = list(Entry.objects.values_list("pk", flat=True))
    data = {"action": "delete_selected", "_selected_action": ids, "post": "yes"}
    _admin(who).post("/admin/configstore/entry/", data)
    return 204 if not Entry.objects.filter(key="pw").exists() else 403


def admin_rollback(who: str, ns: Namespace) -> int:
    services.config_entry_set(namespace=ns, key="pw", value="changed", actor="t")
    revision = Revision.objects.get(namespace=ns, number=2)
    response = _admin(who).post(
        "/admin/configstore/revision/", {"action": "rollback_to", "_selected_action": [revision.pk]}, follow=True
    )
    return 403 if b"Rollback refused" in response.content else 200


def admin_import(who: str, ns: Namespace) -> int:
    data = {"document": "pw: guess\n", "format": "yaml", "message": ""}
    response = _admin(who).post(f"/admin/configstore/namespace/{ns.pk}/import/", data)
    return 200 if response.status_code == 302 else 403 if b"config:secrets" in response.content else 400


def admin_import_replace(who: str, ns: Namespace) -> int:
    data = {"document": "a: 1\n", "format": "yaml", "replace": "on", "message": ""}
    response = _admin(who).post(f"/admin/configstore/namespace/{ns.pk}/import/", data)
    return 200 if response.status_code == 302 else 403 if b"config:secrets" in response.content else 400


def admin_namespace_delete(who: str, ns: Namespace) -> int:
    response = _admin(who).post(f"/admin/configstore/namespace/{ns.pk}/delete/", {"post": "yes"})
    return 204 if not Namespace.objects.filter(pk=ns.pk).exists() else response.status_code


PATHS: dict[str, Callable[[str, Namespace], int]] = {
    "api_put": api_put,
    "api_put_new_secret": api_put_new_secret,
    "api_put_unsecret": api_put_unsecret,
    "api_delete": api_delete,
    "import": api_import,
    "import_replace": api_import_replace,
    "import_secret_section": api_import_secret_section,
    "rollback_delete": api_rollback_delete,
    "rollback_restore": api_rollback_restore,
    "file_reload": api_file_reload,
    "env_reload": api_env_reload,
    "admin_add": admin_add_secret,
    "admin_change": admin_change,
    "admin_delete": admin_delete,
    "admin_bulk_delete": admin_bulk_delete,
    "admin_rollback": admin_rollback,
    "admin_import": admin_import,
    "admin_import_replace": admin_import_replace,
    "admin_namespace_delete": admin_namespace_delete,
}
API_PATHS = [name for name in PATHS if not name.startswith("admin")]


def _import(client, text: str, query: str = "") -> int:  # type: ignore[no-untyped-def]
    url = f"/api/v1/config/payments/import/?format=yaml{query}"
    return client.post(url, text, content_type="application/yaml").status_code


def _state(ns: Namespace) -> tuple:
    """Everything a refused change must leave as it was."""
    ns.refresh_from_db()
    entries = sorted(
        (e.key, e.source_id or 0, e.secret, e.encrypted_value, json.dumps(e.value))
        for e in Entry.objects.filter(namespace=ns)
    )
    return ns.revision, entries


@pytest.mark.parametrize("path", list(PATHS))
def test_a_caller_without_secrets_changes_no_secret_on_any_path(path, secret_ns, monkeypatch):
    monkeypatch.setenv("PAYMENTS_PW", "from-env")
    before = _state(secret_ns)
    status = PATHS[path]("plain", secret_ns)
    assert status == 403, (path, status)
    after = _state(secret_ns)
    if path in {"rollback_restore", "admin_rollback"}:
        # Only the trusted set-up change happened (revision 3); the rollback itself applied nothing.
        assert after[0] == before[0] + 1 and Revision.objects.filter(namespace=secret_ns).count() == 3
    else:
        assert after == before, path
    assert selectors.config_value("payments", "pw") in {"hunter2", "changed"}


@pytest.mark.parametrize("path", list(PATHS))
def test_a_caller_with_secrets_makes_the_same_change(path, secret_ns, monkeypatch):
    monkeypatch.setenv("PAYMENTS_PW", "from-env")
    before = _state(secret_ns)
    status = PATHS[path]("secrets", secret_ns)
    assert 200 <= status < 300, (path, status)
    assert path == "admin_namespace_delete" or _state(secret_ns) != before, path
    expected = {
        "api_put": "guess",
        "api_put_unsecret": "now-plain",
        "api_delete": None,
        "import": "guess",
        "import_replace": None,
        "import_secret_section": {"inner": 1},
        "rollback_delete": None,
        "rollback_restore": "hunter2",
        "file_reload": "from-file",
        "env_reload": "from-env",
        "admin_change": "guess",
        "admin_delete": None,
        "admin_bulk_delete": None,
        "admin_rollback": "hunter2",
        "admin_import": "guess",
        "admin_import_replace": None,
        "admin_namespace_delete": None,
    }
    if path == "admin_namespace_delete":
        assert not Namespace.objects.filter(name="payments").exists()
    elif path in expected:
        assert selectors.config_effective("payments").get("pw") == expected[path], path


@pytest.mark.parametrize("path", API_PATHS)
def test_a_key_limited_to_another_namespace_changes_nothing(path, secret_ns, monkeypatch):
    monkeypatch.setenv("PAYMENTS_PW", "from-env")
    before = _state(secret_ns)
    status = PATHS[path]("limited", secret_ns)
    assert status == 404, (path, status)
    after = _state(secret_ns)
    assert after[1] == before[1] or path == "rollback_restore"


def test_a_caller_without_secrets_still_changes_plain_keys(secret_ns):
    """The rule is about secrets: plain keys next to a secret stay writable by every path."""
    plain = _api("plain")
    assert plain.put("/api/v1/config/payments/a/", {"value": 5}, format="json").status_code == 200
    assert _import(plain, "a: 6\nb: 1\n") == 200
    # A masked export re-imported (even with replace) keeps the secret as it is.
    exported = plain.get("/api/v1/config/payments/?format=yaml").content.decode()
    assert "********" in exported and "hunter2" not in exported
    assert _import(plain, exported, "&replace=true") == 200
    assert selectors.config_effective("payments") == {"a": 6, "b": 1, "pw": "hunter2"}
    # A rollback that leaves the secret alone is fine too.
    assert plain.post("/api/v1/config/payments/rollback/", {"revision": 2}, format="json").status_code == 200
    assert selectors.config_effective("payments") == {"a": 1, "pw": "hunter2"}
    entry = Entry.objects.get(key="a")
    response = _admin("plain").post(
        f"/admin/configstore/entry/{entry.pk}/change/",
        {"value": "7", "description": "", "expected_revision": entry.revision},
    )
    assert response.status_code == 302
    assert selectors.config_value("payments", "a") == 7


def test_a_masked_secret_with_a_new_description_is_a_secret_change(secret_ns):
    plain = _api("plain")
    body = {"value": "********", "description": "new words"}
    assert plain.put("/api/v1/config/payments/pw/", body, format="json").status_code == 403
    assert _api("secrets").put("/api/v1/config/payments/pw/", body, format="json").status_code == 200
    assert selectors.config_value("payments", "pw") == "hunter2"
    assert Entry.objects.get(key="pw").description == "new words"


@pytest.mark.parametrize(
    "call",
    [
        lambda ns, actor: services.config_entry_set(namespace=ns, key="a", value=9, actor=actor),
        lambda ns, actor: services.config_entry_delete(namespace=ns, key="a", actor=actor),
        lambda ns, actor: services.config_import(namespace=ns, text="a: 9\n", fmt="yaml", actor=actor),
        lambda ns, actor: services.config_rollback(namespace=ns, to_revision=1, actor=actor),
        lambda ns, actor: services.config_changes_apply(
            namespace=ns, changes=[services.EntryChange(key="b", value=1)], actor=actor, origin="pipeline"
        ),
        lambda ns, actor: services.source_reload(
            source=ns.sources.filter(name="app").first()
            or services.source_create(namespace=ns, name="app", kind="file", path="app.yaml", actor="op"),
            force=True,
            actor=actor,
        ),
    ],
    ids=["set", "delete", "import", "rollback", "changes_apply", "source_reload"],
)
def test_the_service_enforces_namespace_limits_whatever_the_path(call, secret_ns):
    """Any caller of the services (a pipeline, a future route) gets the same rule as the API."""
    before = _state(secret_ns)
    limited = ConfigActor(name="key:lim", may_secrets=True, is_operator=True, namespaces=frozenset({"other"}))
    with pytest.raises(ChangeNotAllowed):
        call(secret_ns, limited)
    assert _state(secret_ns) == before
    allowed = ConfigActor(name="key:ok", may_secrets=True, is_operator=True, namespaces=frozenset({"payments"}))
    call(secret_ns, allowed)


def test_sources_are_operator_territory_on_every_path(secret_ns):
    writer = ConfigActor(name="key:w", may_secrets=True)
    with pytest.raises(ChangeNotAllowed):
        services.source_create(namespace=secret_ns, name="app", kind="file", path="app.yaml", actor=writer)
    source = services.source_create(namespace=secret_ns, name="app", kind="file", path="app.yaml", actor="op")
    with pytest.raises(ChangeNotAllowed):
        services.source_update(source=source, priority=500, actor=writer)
    with pytest.raises(ChangeNotAllowed):
        services.source_delete(source=source, actor=writer)
    rw = key_client("config:read", "config:write", "config:secrets")
    assert rw.patch(f"/api/v1/config/payments/sources/{source.pk}/", {"priority": 5}, format="json").status_code == 403
    assert rw.delete(f"/api/v1/config/payments/sources/{source.pk}/").status_code == 403
    staff = _admin("secrets")
    assert staff.get("/admin/configstore/source/add/").status_code == 403
    assert staff.post(f"/admin/configstore/source/{source.pk}/delete/", {"post": "yes"}).status_code == 403
    operator = ConfigActor(name="key:admin", is_operator=True)
    assert services.source_create(namespace=secret_ns, name="f2", kind="file", path="app.yaml", actor=operator)
