"""No oracle on secret values; env sources fenced off from the server's own settings; empty documents
never wipe a layer unless asked; the admin shows source-layer entries; file sources read regular files
inside the root only."""

from __future__ import annotations

import json
import os

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings

from configstore import selectors, services
from configstore.access import ConfigActor
from configstore.admin import EntryForm
from configstore.models import Entry, Namespace, Revision
from configstore.sources.env import never_read
from tests.conftest import key_client

OPERATOR = ConfigActor(name="key:op", may_secrets=True, is_operator=True)


@pytest.fixture
def secret_ns(namespace):  # type: ignore[no-untyped-def]
    services.config_entry_set(namespace=namespace, key="db.password", value="hunter2", secret=True, actor="t")
    services.config_entry_set(namespace=namespace, key="db.host", value="db.internal", actor="t")
    return namespace


def _answer(response) -> tuple:  # type: ignore[no-untyped-def]
    """Everything a caller sees, minus the per-request id."""
    body = response.json() if response.content else None
    if isinstance(body, dict):
        body.pop("request_id", None)
    return response.status_code, response["Content-Type"], body


# --- The oracle ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "wrong", "right"),
    [
        ("import", "db:\n  password: guess\n", "db:\n  password: hunter2\n"),
        (
            "import_replace",
            "db:\n  password: guess\n  host: db.internal\n",
            "db:\n  password: hunter2\n  host: db.internal\n",
        ),
        ("import_json", '{"db": {"password": "guess"}}', '{"db": {"password": "hunter2"}}'),
        ("import_secret_flag_json", '{"db.password": "guess"}', '{"db.password": "hunter2"}'),
        ("put", "guess", "hunter2"),
        ("put_same_flag", "guess", "hunter2"),
    ],
)
def test_a_guess_gets_the_same_answer_whether_right_or_wrong(method, wrong, right, secret_ns):
    """Without config:secrets, the answer never depends on whether the guess equals the stored secret."""
    client = key_client("config:read", "config:write")

    def attempt(guess: str):  # type: ignore[no-untyped-def]
        if method == "import":
            return client.post("/api/v1/config/payments/import/?format=yaml", guess, content_type="application/yaml")
        if method == "import_replace":
            return client.post(
                "/api/v1/config/payments/import/?format=yaml&replace=true", guess, content_type="application/yaml"
            )
        if method in {"import_json", "import_secret_flag_json"}:
            return client.post("/api/v1/config/payments/import/", guess, content_type="application/json")
        extra = {"secret": True} if method == "put_same_flag" else {}
        return client.put("/api/v1/config/payments/db.password/", {"value": guess, **extra}, format="json")

    wrong_answer, right_answer = _answer(attempt(wrong)), _answer(attempt(right))
    assert wrong_answer == right_answer
    assert wrong_answer[0] == 403 and "hunter2" not in json.dumps(wrong_answer[2])
    assert Namespace.objects.get(pk=secret_ns.pk).revision == 2
    # The caller with the scope gets the truthful answer.
    full = key_client("config:read", "config:write", "config:secrets")
    same = full.post(
        "/api/v1/config/payments/import/?format=yaml", "db:\n  password: hunter2\n", content_type="application/yaml"
    )
    assert same.status_code == 200 and same.json()["changed"] is False


def test_a_refusal_names_keys_never_values(secret_ns):
    client = key_client("config:read", "config:write")
    response = client.post(
        "/api/v1/config/payments/import/?format=yaml", "db:\n  password: hunter2\n", content_type="application/yaml"
    )
    assert response.status_code == 403 and response["Content-Type"] == "application/problem+json"
    assert "db.password" in response.json()["detail"] and "config:secrets" in response.json()["detail"]
    assert "hunter2" not in response.content.decode()


# --- Env sources -----------------------------------------------------------------------------------


def test_a_config_write_key_cannot_create_an_env_source(namespace):
    for scopes in (("config:read", "config:write"), ("config:read", "config:write", "config:secrets")):
        response = key_client(*scopes).post(
            "/api/v1/config/payments/sources/", {"name": "e", "kind": "env", "prefix": "CONFIG_"}, format="json"
        )
        assert response.status_code == 403, scopes
    assert not namespace.sources.exists()


@pytest.mark.parametrize("prefix", ["CONFIG_", "SECRET_", "DATABASE_", "REDIS_", "PAYMENTS_"])
def test_an_env_prefix_outside_the_allowlist_is_refused_even_for_admin(prefix, namespace):
    admin = key_client("admin")
    response = admin.post(
        "/api/v1/config/payments/sources/", {"name": "e", "kind": "env", "prefix": prefix}, format="json"
    )
    assert response.status_code == 400 and "prefix" in response.json()["errors"], response.content
    with override_settings(CONFIG_ENV_PREFIXES=["OTHER_"]):
        response = admin.post(
            "/api/v1/config/payments/sources/", {"name": "e", "kind": "env", "prefix": prefix}, format="json"
        )
        assert response.status_code == 400
    assert not namespace.sources.exists()


@override_settings(CONFIG_ENV_PREFIXES=["CONFIG_", "SECRET_", "DATABASE_", "REDIS_", "CELERY_", "PAYMENTS_"])
def test_the_servers_own_settings_are_never_imported_whatever_the_allowlist(namespace, monkeypatch):
    monkeypatch.setenv("CONFIG_ENCRYPTION_KEY", "fernet-key-value")
    monkeypatch.setenv("CONFIG_MAX_ENTRIES", "7")  # a setting read without the env helpers
    monkeypatch.setenv("CONFIG_SOURCE_ROOT", "/srv/x")  # read through controlplane/env.py
    monkeypatch.setenv("CONFIG_FEATURE__FLAG", "on")  # an ordinary variable: read
    monkeypatch.setenv("SECRET_KEY", "django-secret")
    monkeypatch.setenv("DATABASE_URL", "postgres://u:pw@h/db")
    monkeypatch.setenv("REDIS_URL", "redis://:pw@h/0")
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://:pw@h/1")
    monkeypatch.setenv("PAYMENTS_DB__PASSWORD", "pw")  # credential-like name: not put in a plain layer
    monkeypatch.setenv("PAYMENTS_API_TOKEN", "tok")
    monkeypatch.setenv("PAYMENTS_DB__PORT", "5432")
    admin = key_client("admin", "config:read")
    layers: dict = {}
    for prefix in ("CONFIG_", "SECRET_", "DATABASE_", "REDIS_", "CELERY_", "PAYMENTS_"):
        name = prefix.lower().strip("_")
        response = admin.post(
            "/api/v1/config/payments/sources/", {"name": name, "kind": "env", "prefix": prefix}, format="json"
        )
        assert response.status_code == 201, response.content
        layers[prefix] = response.json()["load"]
    effective = admin.get("/api/v1/config/payments/").json()
    assert effective == {"feature": {"flag": "on"}, "db": {"port": 5432}}
    text = json.dumps([list(Entry.objects.values_list("key", "value"))])
    for value in ("fernet-key-value", "django-secret", "u:pw", "redis://", "tok", "/srv/x"):
        assert value not in text
    # Layers with nothing readable load nothing (empty: refused, the layer stays empty).
    assert layers["SECRET_"] == "failed" and layers["PAYMENTS_"] == "applied"


@pytest.mark.parametrize(
    "name",
    [
        "SECRET_KEY",
        "CONFIG_ENCRYPTION_KEY",
        "DATABASE_URL",
        "REDIS_URL",
        "CELERY_BROKER_URL",
        "DJANGO_SETTINGS_MODULE",
        "CONTROLPLANE_VAR_DIR",
        "METRICS_TOKEN",
        "ALLOWED_HOSTS",
        "EGRESS_DENY_NETWORKS",
        "PGPASSWORD",
        "APP_PRIVATE_KEY",
        "X_PASSWORD",
        "API_MAX_BODY_BYTES",  # only the env helpers' registry knows these (the settings use other names)
        "CACHE_KEY_PREFIX",
        "LOG_FORMAT",
    ],
)
def test_never_read_covers_settings_and_credentials(name):
    assert never_read(name)


def test_the_registry_holds_what_the_settings_read():
    from controlplane.env import NAMES_READ

    assert {
        "SECRET_KEY",
        "DATABASE_URL",
        "CONFIG_ENCRYPTION_KEY",
        "API_MAX_BODY_BYTES",
        "CONFIG_MAX_ENTRIES",
    } <= NAMES_READ


def test_never_read_lets_ordinary_variables_through():
    for name in ("PAYMENTS_DB__PORT", "PAYMENTS_FEATURE__FLAG", "CONFIG_FEATURE__FLAG", "APP_KEYBOARD"):
        assert not never_read(name), name


def test_an_env_source_stops_reading_when_its_prefix_leaves_the_allowlist(namespace, monkeypatch):
    monkeypatch.setenv("PAYMENTS_A", "1")
    with override_settings(CONFIG_ENV_PREFIXES=["PAYMENTS_"]):
        source = services.source_create(namespace=namespace, name="e", kind="env", prefix="PAYMENTS_", actor="op")
        assert services.source_reload(source=source, actor="t").status == "applied"
    monkeypatch.setenv("PAYMENTS_A", "2")
    result = services.source_reload(source=source, force=True, actor="t")
    assert result.status == "failed" and "CONFIG_ENV_PREFIXES" in result.error
    assert selectors.config_value("payments", "a") == 1


def test_admin_env_sources_need_a_superuser_and_an_allowed_prefix(namespace):
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", "r@example.com", "pw"))
    data = {"namespace": namespace.pk, "name": "e", "kind": "env", "prefix": "CONFIG_", "priority": 300}
    response = client.post("/admin/configstore/source/add/", {**data, "enabled": "on"})
    assert response.status_code == 200 and "CONFIG_ENV_PREFIXES" in response.content.decode()
    with override_settings(CONFIG_ENV_PREFIXES=["PAYMENTS_"]):
        data["prefix"] = "PAYMENTS_"
        assert client.post("/admin/configstore/source/add/", {**data, "enabled": "on"}).status_code == 302
    assert namespace.sources.get().prefix == "PAYMENTS_"


# --- Empty documents -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "body"),
    [
        ("yaml", ""),
        ("yaml", "---\n"),
        ("yaml", "# nothing\n"),
        ("yaml", "{}\n"),
        ("json", "{}"),
        ("toml", ""),
        ("ini", ""),
    ],
)
def test_an_empty_document_never_replaces_a_namespace_unless_asked(fmt, body, namespace):
    services.config_entry_set(namespace=namespace, key="a", value=1, actor="t")
    services.config_entry_set(namespace=namespace, key="b", value=2, actor="t")
    client = key_client("config:read", "config:write")
    url = f"/api/v1/config/payments/import/?format={fmt}&replace=true"
    response = client.post(url, body, content_type="text/plain")
    assert response.status_code == 400 and response["Content-Type"] == "application/problem+json"
    assert "body" in response.json()["errors"] and "allow_empty" in response.json()["errors"]["body"][0]
    assert selectors.config_effective("payments") == {"a": 1, "b": 2}
    # Without replace an empty document is harmless: nothing changes.
    plain = client.post(f"/api/v1/config/payments/import/?format={fmt}", body, content_type="text/plain")
    assert plain.status_code == 200 and plain.json()["changed"] is False
    explicit = client.post(url + "&allow_empty=true", body, content_type="text/plain")
    assert explicit.status_code == 200 and explicit.json()["changed"] is True
    assert selectors.config_effective("payments") == {}


def test_an_empty_document_refused_by_the_service_itself(namespace):
    services.config_entry_set(namespace=namespace, key="a", value=1, actor="t")
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        services.config_import(namespace=namespace, text="", fmt="yaml", replace=True, actor="t")
    assert selectors.config_value("payments", "a") == 1


def test_an_emptied_file_source_keeps_its_layer_unless_allow_empty(namespace, source_root):
    path = source_root / "app.yaml"
    path.write_text("a: 1\n")
    source = services.source_create(namespace=namespace, name="app", kind="file", path="app.yaml", actor="op")
    assert services.source_reload(source=source, actor="t").status == "applied"
    for text in ("", "# truncated\n", "{}\n"):
        path.write_text(text)
        result = services.source_reload(source=source, force=True, actor="t")
        assert result.status == "failed" and "allow_empty" in result.error, text
        assert selectors.config_value("payments", "a") == 1
    source = services.source_update(source=source, allow_empty=True, actor="op")
    assert selectors.config_effective("payments") == {}


def test_an_env_source_with_no_variable_left_keeps_its_layer(namespace, monkeypatch):
    monkeypatch.setenv("PAYMENTS_A", "1")
    with override_settings(CONFIG_ENV_PREFIXES=["PAYMENTS_"]):
        source = services.source_create(namespace=namespace, name="e", kind="env", prefix="PAYMENTS_", actor="op")
        assert services.source_reload(source=source, actor="t").status == "applied"
        monkeypatch.delenv("PAYMENTS_A")
        assert services.source_reload(source=source, actor="t").status == "failed"
        assert selectors.config_value("payments", "a") == 1


def test_the_admin_source_form_offers_allow_empty(namespace, source_root):
    (source_root / "empty.yaml").write_text("")
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", "r@example.com", "pw"))
    data = {"namespace": namespace.pk, "name": "x", "kind": "file", "path": "empty.yaml", "priority": 200}
    client.post("/admin/configstore/source/add/", {**data, "enabled": "on", "allow_empty": "on"})
    source = namespace.sources.get()
    assert source.allow_empty and source.last_error == ""


# --- Admin pages -----------------------------------------------------------------------------------


@pytest.fixture
def superuser_client(db) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("op", "op@example.com", "pw"))
    return client


def test_the_change_page_of_source_layer_entries_opens(superuser_client, namespace, source_root, monkeypatch):
    (source_root / "app.yaml").write_text("db:\n  host: from-file\n")
    file_source = services.source_create(namespace=namespace, name="app", kind="file", path="app.yaml", actor="op")
    services.source_reload(source=file_source, actor="t")
    monkeypatch.setenv("PAYMENTS_DB__PORT", "5432")
    with override_settings(CONFIG_ENV_PREFIXES=["PAYMENTS_"]):
        env_source = services.source_create(namespace=namespace, name="env", kind="env", prefix="PAYMENTS_", actor="op")
        services.source_reload(source=env_source, actor="t")
    for key, value in (("db.host", "from-file"), ("db.port", "5432")):
        entry = Entry.objects.get(key=key, source__isnull=False)
        page = superuser_client.get(f"/admin/configstore/entry/{entry.pk}/change/")
        assert page.status_code == 200, key
        text = page.content.decode()
        assert value in text and 'name="value"' not in text  # shown, not editable
        # A POST to the read-only page changes nothing.
        superuser_client.post(f"/admin/configstore/entry/{entry.pk}/change/", {"value": '"x"'})
        assert Entry.objects.get(pk=entry.pk).value == entry.value


def test_a_secret_entry_page_is_read_only_for_staff_without_the_permission(namespace):
    from tests.configstore.factories import StaffUserFactory

    services.config_entry_set(namespace=namespace, key="pw", value="hunter2", secret=True, actor="t")
    entry = Entry.objects.get(key="pw")
    client = Client()
    client.force_login(StaffUserFactory(perms=["view_entry", "change_entry"]))
    page = client.get(f"/admin/configstore/entry/{entry.pk}/change/")
    assert page.status_code == 200 and "hunter2" not in page.content.decode()
    assert 'name="value"' not in page.content.decode()


def test_the_entry_form_writes_nothing_while_validating(superuser_client, namespace, rf):
    user = get_user_model().objects.get(username="op")
    form_class = type("BoundEntryForm", (EntryForm,), {"actor": ConfigActor.from_user(user)})
    form = form_class(
        data={"namespace": namespace.pk, "key": "a", "value": "1", "description": "", "expected_revision": 0}
    )
    assert form.is_valid(), form.errors
    assert not Entry.objects.exists() and not Revision.objects.exists()
    assert Namespace.objects.get(pk=namespace.pk).revision == 0
    bad = form_class(data={"namespace": namespace.pk, "key": "Bad Key", "value": "1", "expected_revision": 0})
    assert not bad.is_valid()
    # Saving through the admin applies it once, as one revision.
    response = superuser_client.post(
        "/admin/configstore/entry/add/",
        {"namespace": namespace.pk, "key": "a", "value": "1", "description": "", "expected_revision": 0},
    )
    assert response.status_code == 302
    assert Revision.objects.filter(namespace=namespace).count() == 1


# --- File sources ----------------------------------------------------------------------------------


def test_a_file_source_reads_regular_files_inside_the_root_only(namespace, source_root, tmp_path):
    os.mkfifo(source_root / "pipe.yaml")  # would block a plain open() forever
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "x.yaml").write_text("a: 1\n")
    (source_root / "dir").symlink_to(tmp_path / "outside")  # a directory symlink leaving the root
    (source_root / "sub").mkdir()
    (source_root / "sub" / "ok.yaml").write_text("b: 2\n")
    (source_root / "inside.yaml").symlink_to(source_root / "sub" / "ok.yaml")  # stays inside: allowed
    pipe = services.source_create(namespace=namespace, name="p", kind="file", path="pipe.yaml", actor="op")
    result = services.source_reload(source=pipe, actor="t")
    assert result.status == "failed" and "not a regular file" in result.error
    with pytest.raises(Exception, match="leaves the source root"):
        services.source_create(namespace=namespace, name="d", kind="file", path="dir/x.yaml", actor="op")
    for path in ("../outside/x.yaml", "/etc/passwd", "sub/../../outside/x.yaml", "a\x00b.yaml"):
        with pytest.raises(Exception):  # noqa: B017 - ValidationError naming the path
            services.source_create(namespace=namespace, name="z", kind="file", path=path, actor="op")
    ok = services.source_create(namespace=namespace, name="ok", kind="file", path="inside.yaml", actor="op")
    assert services.source_reload(source=ok, actor="t").status == "applied"
    assert selectors.config_effective("payments") == {"b": 2}


def test_a_directory_swapped_for_a_symlink_after_definition_is_refused(namespace, source_root, tmp_path):
    (source_root / "conf").mkdir()
    (source_root / "conf" / "app.yaml").write_text("a: 1\n")
    source = services.source_create(namespace=namespace, name="app", kind="file", path="conf/app.yaml", actor="op")
    assert services.source_reload(source=source, actor="t").status == "applied"
    (tmp_path / "evil").mkdir()
    (tmp_path / "evil" / "app.yaml").write_text("a: stolen\n")
    (source_root / "conf" / "app.yaml").unlink()
    (source_root / "conf").rmdir()
    (source_root / "conf").symlink_to(tmp_path / "evil")
    result = services.source_reload(source=source, force=True, actor="t")
    assert result.status == "failed" and "leaves the source root" in result.error
    assert selectors.config_value("payments", "a") == 1


def test_the_opened_file_is_checked_not_only_the_path_checked_before(namespace, source_root, tmp_path, monkeypatch):
    """The race: the path was checked, then a directory on it became a symlink before the open."""
    (source_root / "conf").mkdir()
    (source_root / "conf" / "app.yaml").write_text("a: 1\n")
    source = services.source_create(namespace=namespace, name="app", kind="file", path="conf/app.yaml", actor="op")
    checked = source_root.resolve() / "conf" / "app.yaml"
    (tmp_path / "evil").mkdir()
    (tmp_path / "evil" / "app.yaml").write_text("a: stolen\n")
    (source_root / "conf" / "app.yaml").unlink()
    (source_root / "conf").rmdir()
    (source_root / "conf").symlink_to(tmp_path / "evil")
    monkeypatch.setattr("configstore.sources.file.resolve_source_path", lambda path: checked)  # as checked before
    result = services.source_reload(source=source, force=True, actor="t")
    assert result.status == "failed" and "leaves the source root" in result.error
    assert selectors.config_value("payments", "a") is None


def test_the_admin_import_page_refuses_an_empty_replace_unless_asked(superuser_client, namespace):
    services.config_entry_set(namespace=namespace, key="a", value=1, actor="t")
    url = f"/admin/configstore/namespace/{namespace.pk}/import/"
    assert superuser_client.get(url).status_code == 200
    page = superuser_client.post(url, {"document": "", "format": "yaml", "replace": "on"})
    assert page.status_code == 200 and "allow_empty" in page.content.decode()
    assert selectors.config_value("payments", "a") == 1
    bad = superuser_client.post(url, {"document": "a: [unclosed", "format": "yaml"})
    assert bad.status_code == 200 and selectors.config_value("payments", "a") == 1
    ok = superuser_client.post(url, {"document": "b: 2\n", "format": "yaml", "replace": "on", "message": "m"})
    assert ok.status_code == 302 and selectors.config_effective("payments") == {"b": 2}
    assert Revision.objects.get(namespace=namespace, number=2).origin == "import"
    emptied = superuser_client.post(url, {"document": "", "format": "yaml", "replace": "on", "allow_empty": "on"})
    assert emptied.status_code == 302 and selectors.config_effective("payments") == {}
