"""The config API: namespaces, entries with CAS, export/ETag, import, history, rollback, rules, sources, scoping."""

from __future__ import annotations

import json

import pytest
import yaml

from configstore.models import Entry, Namespace, Revision
from controlplane.events.models import Event
from tests.conftest import key_client

PROBLEM = "application/problem+json"


@pytest.fixture
def rw(db):  # type: ignore[no-untyped-def]
    return key_client("config:read", "config:write")


@pytest.fixture
def full(db):  # type: ignore[no-untyped-def]
    return key_client("config:read", "config:write", "config:secrets")


def put(client, ns, key, value, **extra):  # type: ignore[no-untyped-def]
    headers = {}
    if "if_match" in extra:
        headers["HTTP_IF_MATCH"] = str(extra.pop("if_match"))
    return client.put(f"/api/v1/config/{ns}/{key}/", {"value": value, **extra}, format="json", **headers)


def test_create_and_list_namespaces(rw):
    response = rw.post("/api/v1/config/", {"name": "payments", "description": "PSP"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["revision"] == 0
    assert rw.post("/api/v1/config/", {"name": "payments"}, format="json").status_code == 400
    bad = rw.post("/api/v1/config/", {"name": "Bad Name!"}, format="json")
    assert bad.status_code == 400 and bad["Content-Type"] == PROBLEM and "name" in bad.json()["errors"]
    assert [n["name"] for n in rw.get("/api/v1/config/").json()["results"]] == ["payments"]


def test_entry_put_get_delete_with_layers_and_etag(rw, namespace):
    response = put(rw, "payments", "db.port", 5432, description="port")
    assert response.status_code == 201, response.content
    assert response["ETag"] == '"1"'
    body = rw.get("/api/v1/config/payments/db.port/").json()
    assert (
        body["value"] == 5432
        and body["layer"] == "database"
        and body["revision"] == 1
        and body["description"] == "port"
    )
    assert [layer["layer"] for layer in body["layers"]] == ["database"]
    assert rw.get("/api/v1/config/payments/db/").json()["value"] == {"port": 5432}
    assert put(rw, "payments", "db.port", 5433).status_code == 200
    assert rw.delete("/api/v1/config/payments/db.port/").status_code == 204
    missing = rw.get("/api/v1/config/payments/db.port/")
    assert missing.status_code == 404 and missing["Content-Type"] == PROBLEM


def test_compare_and_swap_with_if_match(rw, namespace):
    assert put(rw, "payments", "counter", 1, if_match=0).status_code == 201
    stale = put(rw, "payments", "counter", 2, if_match=0)
    assert stale.status_code == 412 and stale["Content-Type"] == PROBLEM
    assert put(rw, "payments", "counter", 2, if_match='"1"').status_code == 200
    assert rw.delete("/api/v1/config/payments/counter/", HTTP_IF_MATCH="1").status_code == 412
    assert put(rw, "payments", "counter", 3, if_match="abc").status_code == 400
    assert rw.get("/api/v1/config/payments/counter/").json()["value"] == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "value"), ({"value": 1, "secret": "maybe"}, "secret")],
)
def test_malformed_entry_bodies_are_400(rw, namespace, body, field):
    response = rw.put("/api/v1/config/payments/a/", body, format="json")
    assert response.status_code == 400 and field in response.json()["errors"]
    assert not Entry.objects.exists()


def test_invalid_key_in_url_is_rejected(rw, namespace):
    assert rw.put("/api/v1/config/payments/Bad-Key/", {"value": 1}, format="json").status_code == 404
    response = put(rw, "payments", "watch", 1)  # reserved: routed to the watch view, which refuses PUT
    assert response.status_code == 405
    assert not Entry.objects.exists()


def test_namespace_get_export_formats_and_if_none_match(full, namespace):
    put(full, "payments", "db.host", "db.internal")
    put(full, "payments", "db.port", 5432)
    response = full.get("/api/v1/config/payments/")
    assert response.json() == {"db": {"host": "db.internal", "port": 5432}}
    assert response["ETag"] == '"2"'
    assert full.get("/api/v1/config/payments/", HTTP_IF_NONE_MATCH='"2"').status_code == 304
    assert full.get("/api/v1/config/payments/", HTTP_IF_NONE_MATCH='"1"').status_code == 200
    assert yaml.safe_load(full.get("/api/v1/config/payments/?format=yaml").content) == {
        "db": {"host": "db.internal", "port": 5432}
    }
    assert "[db]\nhost = db.internal\nport = 5432" in full.get("/api/v1/config/payments/?format=ini").content.decode()
    assert "DB__PORT=5432" in full.get("/api/v1/config/payments/?format=env").content.decode()
    assert "port = 5432" in full.get("/api/v1/config/payments/?format=toml").content.decode()
    assert json.loads(full.get("/api/v1/config/payments/?format=json").content)["db"]["port"] == 5432
    bad = full.get("/api/v1/config/payments/?format=xml")
    assert bad.status_code == 400 and "format" in bad.json()["errors"]


def test_import_all_or_nothing_and_round_trip(full, namespace, add_rule):
    add_rule("db.port", "range", min=1, max=65535)
    bad = full.post(
        "/api/v1/config/payments/import/?format=yaml",
        "db:\n  port: 70000\n  host: h\n",
        content_type="application/yaml",
    )
    assert bad.status_code == 400 and "db.port" in bad.json()["errors"]
    assert not Entry.objects.exists()
    unparsable = full.post(
        "/api/v1/config/payments/import/?format=yaml", "db: [unclosed\n", content_type="application/yaml"
    )
    assert unparsable.status_code == 400 and "body" in unparsable.json()["errors"]
    unknown = full.post("/api/v1/config/payments/import/?format=xml", "<a/>", content_type="application/xml")
    assert unknown.status_code == 400 and "format" in unknown.json()["errors"]
    ok = full.post(
        "/api/v1/config/payments/import/?format=yaml", "db:\n  port: 5432\n  host: h\n", content_type="application/yaml"
    )
    assert ok.status_code == 200 and ok.json() == {"changed": True, "revision": 1, "keys": 2}
    put(full, "payments", "token", "t0ps3cret", secret=True)
    for fmt in ("yaml", "json", "ini", "toml", "env"):
        exported = full.get(f"/api/v1/config/payments/?format={fmt}").content
        again = full.post(f"/api/v1/config/payments/import/?format={fmt}", exported, content_type="text/plain")
        assert again.json()["changed"] is False, (fmt, exported)
    assert Namespace.objects.get().revision == 2


def test_secrets_need_the_secrets_scope(full, rw, namespace):
    assert put(rw, "payments", "pw", "hunter2", secret=True).status_code == 403
    assert put(full, "payments", "pw", "hunter2", secret=True).status_code == 201
    assert rw.get("/api/v1/config/payments/pw/").json()["value"] == "********"
    assert rw.get("/api/v1/config/payments/").json() == {"pw": "********"}
    for fmt in ("yaml", "json", "ini", "toml", "env"):
        assert b"hunter2" not in rw.get(f"/api/v1/config/payments/?format={fmt}").content
    assert full.get("/api/v1/config/payments/pw/").json()["value"] == "hunter2"
    assert full.get("/api/v1/config/payments/").json() == {"pw": "hunter2"}
    assert b"hunter2" not in full.get("/api/v1/config/payments/history/").content
    assert put(rw, "payments", "pw", "other").status_code == 403
    assert rw.delete("/api/v1/config/payments/pw/").status_code == 403
    assert "hunter2" not in repr(list(Event.objects.values_list("data", flat=True)))


def test_history_and_rollback(rw, namespace):
    put(rw, "payments", "a", 1)
    put(rw, "payments", "a", 2)
    put(rw, "payments", "b", True)
    history = rw.get("/api/v1/config/payments/history/").json()
    assert [r["number"] for r in history["results"]] == [3, 2, 1]
    assert history["results"][1]["changes"] == [
        {
            "key": "a",
            "layer": "database",
            "action": "update",
            "old": 1,
            "new": 2,
            "old_secret": False,
            "new_secret": False,
        }
    ]
    assert rw.get("/api/v1/config/payments/history/2/").json()["number"] == 2
    response = rw.post("/api/v1/config/payments/rollback/", {"revision": 1}, format="json")
    assert response.status_code == 200 and response.json() == {"changed": True, "revision": 4}
    assert rw.get("/api/v1/config/payments/").json() == {"a": 1}
    assert Revision.objects.get(number=4).origin == "rollback"
    assert rw.post("/api/v1/config/payments/rollback/", {"revision": 99}, format="json").status_code == 400
    assert rw.post("/api/v1/config/payments/rollback/", {}, format="json").status_code == 400


def test_rules_crud_and_validation(rw, namespace):
    created = rw.post(
        "/api/v1/config/payments/rules/",
        {"key": "db.port", "kind": "range", "params": {"min": 1, "max": 65535}},
        format="json",
    )
    assert created.status_code == 201, created.content
    rule_id = created.json()["id"]
    assert put(rw, "payments", "db.port", 0).status_code == 400
    bad = rw.post(
        "/api/v1/config/payments/rules/", {"key": "x", "kind": "range", "params": {"min": "a"}}, format="json"
    )
    assert bad.status_code == 400 and "params" in bad.json()["errors"]
    unknown = rw.post("/api/v1/config/payments/rules/", {"key": "x", "kind": "magic"}, format="json")
    assert unknown.status_code == 400 and "kind" in unknown.json()["errors"]
    updated = rw.put(
        f"/api/v1/config/payments/rules/{rule_id}/",
        {"key": "db.port", "kind": "range", "params": {"min": 0}, "message": "m"},
        format="json",
    )
    assert updated.status_code == 200 and updated.json()["params"] == {"min": 0}
    assert put(rw, "payments", "db.port", 0).status_code == 201
    assert rw.get("/api/v1/config/payments/rules/").json()["count"] == 1
    assert rw.delete(f"/api/v1/config/payments/rules/{rule_id}/").status_code == 204


def test_scopes(namespace):
    reader = key_client("config:read")
    assert reader.get("/api/v1/config/payments/").status_code == 200
    assert put(reader, "payments", "a", 1).status_code == 403
    other = key_client("registry:read")
    assert other.get("/api/v1/config/payments/").status_code == 403
    from rest_framework.test import APIClient

    assert APIClient().get("/api/v1/config/payments/").status_code == 401


def test_namespace_scoped_keys_cannot_see_other_namespaces(rw, namespace):
    from configstore import services

    services.namespace_create(name="billing", actor="t")
    put(rw, "billing", "secret_plan", "x")
    limited = key_client("config:read", "config:write", namespaces=["payments"])
    for path in (
        "/api/v1/config/billing/",
        "/api/v1/config/billing/secret_plan/",
        "/api/v1/config/billing/history/",
        "/api/v1/config/billing/rules/",
        "/api/v1/config/billing/sources/",
        "/api/v1/config/nonexistent/",
    ):
        response = limited.get(path)
        assert response.status_code == 404, path
    assert put(limited, "billing", "a", 1).status_code == 404
    assert (
        limited.post("/api/v1/config/billing/import/?format=json", "{}", content_type="application/json").status_code
        == 404
    )
    assert [n["name"] for n in limited.get("/api/v1/config/").json()["results"]] == ["payments"]
    assert limited.post("/api/v1/config/", {"name": "other"}, format="json").status_code == 403
    assert limited.get("/api/v1/config/payments/").status_code == 200


def test_sources_api_rejects_paths_outside_the_root(rw, namespace, source_root, tmp_path):
    op = key_client("admin")  # sources are operator territory
    (tmp_path / "outside.yaml").write_text("a: 1\n")
    (source_root / "link.yaml").symlink_to(tmp_path / "outside.yaml")
    for path in ("../outside.yaml", "/etc/passwd", "link.yaml", "sub/../../outside.yaml"):
        response = op.post(
            "/api/v1/config/payments/sources/",
            {"name": "s", "kind": "file", "path": path, "format": "yaml"},
            format="json",
        )
        assert response.status_code == 400 and "path" in response.json()["errors"], (path, response.content)
    assert (
        op.post(
            "/api/v1/config/payments/sources/", {"name": "e", "kind": "env", "prefix": "lower"}, format="json"
        ).status_code
        == 400
    )
    (source_root / "app.yaml").write_text("feature:\n  enabled: true\n")
    assert (
        rw.post(
            "/api/v1/config/payments/sources/", {"name": "app", "kind": "file", "path": "app.yaml"}, format="json"
        ).status_code
        == 403
    )
    created = op.post(
        "/api/v1/config/payments/sources/", {"name": "app", "kind": "file", "path": "app.yaml"}, format="json"
    )
    assert created.status_code == 201 and created.json()["load"] == "applied" and created.json()["priority"] == 200
    assert rw.get("/api/v1/config/payments/").json() == {"feature": {"enabled": True}}
    source_id = created.json()["id"]
    assert (
        rw.patch(f"/api/v1/config/payments/sources/{source_id}/", {"enabled": False}, format="json").status_code == 403
    )
    assert (
        op.patch(f"/api/v1/config/payments/sources/{source_id}/", {"enabled": False}, format="json").status_code == 200
    )
    assert rw.get("/api/v1/config/payments/").json() == {}
    assert (
        op.patch(f"/api/v1/config/payments/sources/{source_id}/", {"enabled": True}, format="json").status_code == 200
    )
    (source_root / "app.yaml").write_text("feature:\n  enabled: false\n")
    reloaded = rw.post(f"/api/v1/config/payments/sources/{source_id}/reload/")
    assert reloaded.json()["status"] == "applied"
    assert rw.get("/api/v1/config/payments/feature.enabled/").json()["value"] is False
    assert rw.delete(f"/api/v1/config/payments/sources/{source_id}/").status_code == 403
    assert op.delete(f"/api/v1/config/payments/sources/{source_id}/").status_code == 204
    assert rw.get("/api/v1/config/payments/").json() == {}
