"""A check's configuration fields are defined once (`registry.models.CHECK_CONFIG_FIELDS`, the rules on the
model fields): the registration body, the check detail, the re-registration compare and the admin page are
built from them, and the service applies the same bounds as the API."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from registry import services
from registry.api.serializers import CheckSerializer, CheckSpecSerializer
from registry.models import CHECK_CONFIG_FIELDS, CHECK_MASKED_FIELDS, CHECK_STATE_FIELDS, Check
from tests.registry.factories import ServiceFactory

pytestmark = pytest.mark.django_db

REGISTRY = Path(__file__).resolve().parents[2] / "registry"

# A value different from the model default for every configuration field, valid for an http check.
CHANGED = {
    "interval": 30.0,
    "timeout": 4.0,
    "enabled": False,
    "method": "HEAD",
    "path": "/status",
    "headers": {"Authorization": "Bearer s3cret-token"},
    "expected_statuses": "200,204",
    "body_contains": "ok",
    "store_body": True,
    "tls_verify": False,
    "follow_redirects": True,
    "warn_latency_ms": 250,
    "ttl": 60.0,
    "probe": "",
    "params": {"password": "hunter2-password"},
    "successes_before_passing": 2,
    "failures_before_warning": 3,
    "failures_before_critical": 4,
}


def test_no_other_registry_module_writes_the_list_again() -> None:
    """No list or tuple literal of most (15+) of the configuration names outside models.py."""
    names = set(CHECK_CONFIG_FIELDS)
    copies = []
    for path in REGISTRY.rglob("*.py"):
        if "migrations" in path.parts or path.name == "models.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
                literal = {elt.value for elt in node.elts if isinstance(elt, ast.Constant)}
                if len(literal & names) >= 15:
                    copies.append(f"{path.relative_to(REGISTRY.parent)}:{node.lineno}")
    assert not copies, copies


def test_the_api_and_admin_field_sets_are_the_model_list() -> None:
    assert set(CHANGED) | {"kind"} == set(CHECK_CONFIG_FIELDS)  # this test's own table is complete
    assert list(CheckSpecSerializer().fields) == ["name", *CHECK_CONFIG_FIELDS]
    detail = list(CheckSerializer().fields)
    assert detail[detail.index("name") + 1 :] == [*CHECK_CONFIG_FIELDS, *CHECK_STATE_FIELDS]
    from django.contrib import admin

    from registry.admin import CheckAdmin

    check_admin = CheckAdmin(Check, admin.site)
    shown = check_admin.get_readonly_fields(None)
    for name in CHECK_CONFIG_FIELDS:
        assert (f"{name}_masked" if name in CHECK_MASKED_FIELDS else name) in shown, name
    assert not CHECK_MASKED_FIELDS & set(shown)  # credentials only ever masked
    assert CHECK_MASKED_FIELDS <= set(check_admin.exclude)


def _register(api, **check):  # type: ignore[no-untyped-def]
    body = {"instance_id": "i-1", "address": "127.0.0.1", "port": 8080, "checks": [{"name": "c", **check}]}
    return api.post("/api/v1/services/billing/instances/", body, format="json")


@pytest.mark.parametrize("field", sorted(CHANGED))
def test_every_field_set_by_a_re_registration_is_stored_and_shown(field, admin_api) -> None:  # type: ignore[no-untyped-def]
    ServiceFactory(name="billing")
    assert _register(admin_api, kind="http").status_code in (200, 201)
    check = Check.objects.get(name="c")
    assert getattr(check, field) != CHANGED[field] or field == "probe", "the table must change the field"
    response = _register(admin_api, kind="http", **{field: CHANGED[field]})
    assert response.status_code == 200, response.content
    check.refresh_from_db()
    assert getattr(check, field) == CHANGED[field]
    shown = admin_api.get(f"/api/v1/checks/{check.pk}/").json()
    if field in CHECK_MASKED_FIELDS:
        assert "s3cret-token" not in str(shown[field]) and "hunter2-password" not in str(shown[field])
        assert set(shown[field]) == set(CHANGED[field])
    else:
        assert shown[field] == CHANGED[field]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("successes_before_passing", 101),
        ("failures_before_warning", 1000),
        ("failures_before_critical", 101),
        ("warn_latency_ms", 0),
        ("interval", 0.5),
        ("ttl", 0),
        ("method", "X" * 11),
    ],
)
def test_the_service_and_the_api_refuse_the_same_values(field, value, admin_api) -> None:  # type: ignore[no-untyped-def]
    service = ServiceFactory(name="billing")
    spec = {"name": "c", "kind": "http", field: value}
    with pytest.raises(ValidationError) as caught:
        services.instance_register(
            service=service, instance_id="i-1", address="127.0.0.1", port=8080, checks=[spec], actor="t"
        )
    assert f"checks.0.{field}" in caught.value.message_dict, caught.value.message_dict
    response = _register(admin_api, kind="http", **{field: value})
    assert response.status_code == 400, response.content
    assert f"checks.0.{field}" in response.json()["errors"], response.json()


def test_the_admin_change_page_shows_every_field_and_masks_credentials(client) -> None:  # type: ignore[no-untyped-def]
    service = ServiceFactory(name="billing")
    spec = {"name": "c", "kind": "http", **{k: v for k, v in CHANGED.items() if k not in ("ttl", "probe")}}
    instance, _ = services.instance_register(
        service=service, instance_id="i-1", address="127.0.0.1", port=8080, checks=[spec], actor="t"
    )
    check = instance.checks.get()
    client.force_login(get_user_model().objects.create_superuser("root", "", "pw-for-tests-only"))
    page = client.get(f"/admin/registry/check/{check.pk}/change/").content.decode()
    for name in CHECK_CONFIG_FIELDS:
        label = Check._meta.get_field(name).verbose_name
        assert label.lower() in page.lower(), name
    assert "s3cret-token" not in page and "hunter2-password" not in page
    assert "/status" in page and "200,204" in page
