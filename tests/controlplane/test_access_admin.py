"""The API-key admin: every write through the services (events), prefixes in URLs, one validator."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.test import Client

from controlplane.access.models import APIKey
from controlplane.events.models import Event
from tests.factories import APIKeyFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator() -> Client:
    user = get_user_model().objects.create_superuser("operator", "op@example.com", "pw")
    client = Client()
    client.force_login(user)
    return client


def _change_data(key: APIKey, **fields) -> dict:  # type: ignore[no-untyped-def]
    data = {
        "name": key.name,
        "scopes": key.scopes,
        "rate": key.rate,
        "namespaces": ", ".join(key.namespaces),
        "expiry_date_0": "",
        "expiry_date_1": "",
        "_save": "Save",
    }
    data.update(fields)
    return data


def test_admin_pages_address_keys_by_prefix_and_never_show_the_hash(operator: Client) -> None:
    response = operator.post(
        "/admin/access/apikey/add/",
        {"name": "svc", "scopes": ["events:read"], "rate": "", "namespaces": "", "_continue": "1"},
    )
    assert response.status_code == 302
    key = APIKey.objects.get()
    assert key.pk == key.prefix  # not "<prefix>.<hash>"
    assert response["Location"] == f"/admin/access/apikey/{key.prefix}/change/"
    pages = [
        operator.get("/admin/access/apikey/"),
        operator.get(f"/admin/access/apikey/{key.prefix}/change/"),
        operator.get(f"/admin/access/apikey/{key.prefix}/delete/"),
        operator.get(f"/admin/access/apikey/{key.prefix}/history/"),
        operator.post("/admin/access/apikey/", {"action": "delete_selected", "_selected_action": [key.pk]}),
        operator.get("/admin/"),  # recent actions link to the key
    ]
    for page in pages:
        assert page.status_code == 200
        html = page.content.decode()
        assert key.hashed_key not in html
        assert key.hashed_key[:20] not in html
    assert f"/admin/access/apikey/{key.prefix}/change/" in pages[0].content.decode()
    assert all(entry.object_id == key.prefix for entry in LogEntry.objects.all())


def test_admin_edit_goes_through_the_service_and_emits_apikey_updated(operator: Client) -> None:
    key = APIKeyFactory(scopes=["events:read"], rate="", namespaces=[])
    response = operator.post(
        f"/admin/access/apikey/{key.prefix}/change/",
        _change_data(key, scopes=["config:read", "events:read"], rate="100/h", namespaces="billing, orders"),
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    key.refresh_from_db()
    assert key.scopes == ["config:read", "events:read"] and key.rate == "100/h"
    assert key.namespaces == ["billing", "orders"]
    event = Event.objects.get(kind="apikey.updated", subject=key.prefix)
    assert event.actor == "user:operator"
    assert set(event.data["changed"]) == {"scopes", "rate", "namespaces"}
    assert key.hashed_key not in str(event.data)


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"rate": "0/m"}, "rate", "positive count"),
        ({"rate": "0/h"}, "rate", "positive count"),
        ({"rate": "5/0m"}, "rate", "positive count"),
        ({"rate": "lots"}, "rate", "A rate looks like 600/m"),
        ({"namespaces": "../x, NOPE!"}, "namespaces", "Not a namespace name"),
        ({"namespaces": "billing, a/b"}, "namespaces", "Not a namespace name"),
        ({"namespaces": "-lead"}, "namespaces", "Not a namespace name"),
    ],
)
def test_admin_add_and_change_forms_refuse_what_the_api_refuses(operator: Client, fields, field, message) -> None:  # type: ignore[no-untyped-def]
    add = {"name": "svc", "scopes": ["events:read"], "rate": "", "namespaces": "", **fields}
    response = operator.post("/admin/access/apikey/add/", add)
    assert response.status_code == 200  # the form again, with the error
    assert message in " ".join(response.context["adminform"].form.errors[field])
    assert APIKey.objects.count() == 0
    key = APIKeyFactory(scopes=["events:read"])
    response = operator.post(f"/admin/access/apikey/{key.prefix}/change/", _change_data(key, **fields))
    assert response.status_code == 200
    assert message in " ".join(response.context["adminform"].form.errors[field])
    key.refresh_from_db()
    assert key.rate == "" and key.namespaces == []
    assert not Event.objects.filter(kind="apikey.updated").exists()


def test_admin_delete_and_bulk_delete_go_through_the_service(operator: Client) -> None:
    one, two, three = APIKeyFactory(), APIKeyFactory(), APIKeyFactory()
    response = operator.post(f"/admin/access/apikey/{one.prefix}/delete/", {"post": "yes"})
    assert response.status_code == 302
    response = operator.post(
        "/admin/access/apikey/", {"action": "delete_selected", "_selected_action": [two.pk, three.pk], "post": "yes"}
    )
    assert response.status_code == 302
    assert not APIKey.objects.exists()
    deleted = Event.objects.filter(kind="apikey.deleted")
    assert sorted(deleted.values_list("subject", flat=True)) == sorted([one.prefix, two.prefix, three.prefix])
    assert set(deleted.values_list("actor", flat=True)) == {"user:operator"}


def test_a_revoked_key_cannot_be_edited_back_to_life(operator: Client) -> None:
    key = APIKeyFactory(scopes=["events:read"], revoked=True)
    response = operator.post(f"/admin/access/apikey/{key.prefix}/change/", _change_data(key, scopes=["admin"]))
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked and key.scopes == ["events:read"]


# --- admin sign-in throttle -------------------------------------------------------------------------
# Counters live in the shared cache (Redis in the production pass), so each test uses its own client
# addresses and user names.


def _unique_ip() -> str:
    import random

    return f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


def _login(username: str, password: str, ip: str):  # type: ignore[no-untyped-def]
    return Client().post("/admin/login/?next=/admin/", {"username": username, "password": password}, REMOTE_ADDR=ip)


@pytest.fixture
def staff(settings):  # type: ignore[no-untyped-def]
    import uuid

    # Dozens of sign-ins per test: a fast hasher keeps them cheap (the throttle does not depend on it).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    name = f"ops-{uuid.uuid4().hex[:8]}"
    return get_user_model().objects.create_superuser(name, f"{name}@example.com", "right-password")


def test_failed_sign_ins_from_one_client_are_throttled_with_a_clear_message(settings, staff) -> None:  # type: ignore[no-untyped-def]
    import uuid

    ip = _unique_ip()
    limit = int(settings.ADMIN_LOGIN_RATE_CLIENT.split("/")[0])
    # Guessing over many user names (so the per-user limit never trips) from one address.
    for attempt in range(limit):
        response = _login(f"guess-{uuid.uuid4().hex[:6]}", "wrong", ip)
        assert response.status_code == 200, attempt  # the normal "wrong password" form
        assert "Please enter the correct" in response.content.decode()
    refused = _login(f"guess-{uuid.uuid4().hex[:6]}", "wrong", ip)
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    assert "Too many failed sign-in attempts from this address" in refused.content.decode()
    # Even the right password is refused from that address: guessing cannot go on behind the refusal.
    right = _login(staff.username, "right-password", ip)
    assert right.status_code == 429 and "_auth_user_id" not in right.client.session
    # Another address is not affected.
    assert _login(staff.username, "right-password", _unique_ip()).status_code == 302


def test_failed_sign_ins_for_one_user_name_are_throttled_across_addresses(settings, staff) -> None:  # type: ignore[no-untyped-def]
    limit = int(settings.ADMIN_LOGIN_RATE_USER.split("/")[0])
    for attempt in range(limit):
        # Spread over addresses, and spelled differently: still the same user name.
        name = staff.username.upper() if attempt % 2 else f" {staff.username} "
        assert _login(name, f"wrong-{attempt}", _unique_ip()).status_code == 200
    refused = _login(staff.username, "right-password", _unique_ip())
    assert refused.status_code == 429
    assert "Too many failed sign-in attempts for this user name" in refused.content.decode()
    other = get_user_model().objects.create_superuser(f"{staff.username}-2", "o@example.com", "other-password")
    assert _login(other.username, "other-password", _unique_ip()).status_code == 302


def test_successful_sign_ins_and_page_views_are_not_counted(settings, staff) -> None:  # type: ignore[no-untyped-def]
    ip = _unique_ip()
    limit = int(settings.ADMIN_LOGIN_RATE_USER.split("/")[0])
    for _ in range(limit + 5):
        assert Client().get("/admin/login/", REMOTE_ADDR=ip).status_code == 200
        assert _login(staff.username, "right-password", ip).status_code == 302
    for _ in range(limit - 1):
        assert _login(staff.username, "wrong", ip).status_code == 200
    assert _login(staff.username, "right-password", ip).status_code == 302  # still below the limit


def test_sign_in_fails_closed_when_the_counters_cannot_be_read(monkeypatch, staff) -> None:  # type: ignore[no-untyped-def]
    from controlplane.access import login_throttle

    def store_down(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise ConnectionError("rate-limit store unreachable")  # the shared cache is the outside boundary

    monkeypatch.setattr(login_throttle, "get_usage", store_down)
    refused = _login(staff.username, "right-password", _unique_ip())
    assert refused.status_code == 429 and "temporarily unavailable" in refused.content.decode()
