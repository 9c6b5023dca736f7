"""Each rule kind on each write path (admin form, API, import, file source, env source): bad input applies
nothing and reports the key; good input applies."""

from __future__ import annotations

import json

import pytest
import yaml
from django.contrib.auth import get_user_model
from django.test import Client

from configstore import selectors, services
from configstore.models import Entry, Namespace, Revision
from tests.conftest import key_client

SCHEMA = {"type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}}}
ABSENT = object()
KINDS = [
    ("type", {"type": "integer"}, "db.port", "abc", 5432),
    ("range", {"min": 1, "max": 65535}, "db.port", 70000, 5432),
    ("required", {}, "db.host", ABSENT, "db.internal"),
    ("pattern", {"regex": r"[a-z]+\.internal"}, "db.host", "Bad Host", "db.internal"),
    ("choices", {"choices": ["EUR", "USD"]}, "currency", "XYZ", "EUR"),
    ("length", {"min": 3, "max": 8}, "name", "ab", "abcd"),
    ("json_schema", {"schema": SCHEMA}, "limits", {"a": "x"}, {"a": 1}),
]


def _document(key: str, value) -> dict:  # type: ignore[no-untyped-def]
    """The flat mapping a write carries: the ruled key, or (for `required`) only another key."""
    return {"other": 1} if value is ABSENT else {key: value}


def write_api(namespace, key, value, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    client = key_client("config:read", "config:write")
    ((k, v),) = _document(key, value).items()
    response = client.put(f"/api/v1/config/{namespace.name}/{k}/", {"value": v}, format="json")
    return response.status_code < 300, response.json().get("errors", {}) if response.status_code >= 300 else {}


def write_import(namespace, key, value, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    client = key_client("config:read", "config:write")
    text = yaml.safe_dump(_nested(_document(key, value)))
    response = client.post(
        f"/api/v1/config/{namespace.name}/import/?format=yaml", text, content_type="application/yaml"
    )
    return response.status_code < 300, response.json().get("errors", {}) if response.status_code >= 300 else {}


def write_admin(namespace, key, value, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    user = get_user_model().objects.filter(username="op").first() or get_user_model().objects.create_superuser(
        "op", "op@example.com", "pw"
    )
    client = Client()
    client.force_login(user)
    ((k, v),) = _document(key, value).items()
    response = client.post(
        "/admin/configstore/entry/add/",
        {"namespace": namespace.pk, "key": k, "value": json.dumps(v), "description": "", "expected_revision": 0},
    )
    if response.status_code == 302:
        return True, {}
    form = response.context["adminform"].form
    # An error on the form's value field is about the key being edited; others name their key.
    return False, {
        (k if name == "value" else name): [str(m) for m in messages] for name, messages in form.errors.items()
    }


def write_file(namespace, key, value, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    monkeypatch.setattr("configstore.conf.source_root", lambda: root)
    (root / "app.yaml").write_text(yaml.safe_dump(_nested(_document(key, value))))
    source = namespace.sources.filter(name="app").first() or services.source_create(
        namespace=namespace, name="app", kind="file", path="app.yaml", actor="test"
    )
    result = services.source_reload(source=source, actor="test")
    source.refresh_from_db()
    return result.status == "applied", {key: [source.last_error]} if result.error else {}


def write_env(namespace, key, value, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr("configstore.conf.env_prefixes", lambda: ["TESTCS_"])
    for name in [n for n in __import__("os").environ if n.startswith("TESTCS_")]:
        monkeypatch.delenv(name)
    for k, v in _document(key, value).items():
        monkeypatch.setenv("TESTCS_" + k.replace(".", "__").upper(), v if isinstance(v, str) else json.dumps(v))
    source = namespace.sources.filter(name="env").first() or services.source_create(
        namespace=namespace, name="env", kind="env", prefix="TESTCS_", actor="test"
    )
    result = services.source_reload(source=source, actor="test")
    source.refresh_from_db()
    return result.status == "applied", {key: [source.last_error]} if result.error else {}


def _nested(flat: dict) -> dict:
    from configstore.formats import nest

    return nest(flat)


PATHS = {"api": write_api, "import": write_import, "admin": write_admin, "file": write_file, "env": write_env}


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize(("kind", "params", "key", "bad", "good"), KINDS, ids=[k[0] for k in KINDS])
def test_rule_kind_on_write_path(db, path, kind, params, key, bad, good, tmp_path, monkeypatch, add_rule, namespace):
    add_rule(key, kind, **params)
    write = PATHS[path]
    applied, errors = write(namespace, key, bad, tmp_path, monkeypatch)
    assert not applied
    assert any(key in k or key in " ".join(v) for k, v in errors.items()), errors
    assert not Entry.objects.exists()
    assert Namespace.objects.get(pk=namespace.pk).revision == 0
    applied, errors = write(namespace, key, good, tmp_path, monkeypatch)
    assert applied, errors
    assert selectors.config_value(namespace.name, key) == good
    assert Revision.objects.filter(namespace=namespace).count() == 1
