"""The operator's home: the admin, in a real browser."""

from __future__ import annotations

import re

import pytest

from controlplane.access.models import APIKey
from controlplane.events.models import Event

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_admin_home_shows_every_area(admin_login, tmp_path) -> None:  # type: ignore[no-untyped-def]
    page, _ = admin_login
    assert page.inner_text("#site-name") == "controlplane"
    body = page.inner_text("#content")
    for section in ("Access (API keys)", "Events and webhooks", "Service registry", "Configuration", "Pipelines"):
        assert section.upper() in body.upper(), section
    page.screenshot(path=str(tmp_path / "admin-home.png"))


def test_operator_creates_a_key_sees_it_once_and_revokes_it(admin_login) -> None:  # type: ignore[no-untyped-def]
    page, base = admin_login
    page.goto(f"{base}/admin/access/apikey/add/")
    page.fill("#id_name", "billing")
    page.check("input[name=scopes][value='registry:read']")
    page.fill("#id_rate", "not a rate")
    page.click("input[name=_save]")
    assert "A rate looks like 600/m" in page.inner_text("#content")  # field error, nothing created
    assert APIKey.objects.count() == 0
    page.fill("#id_rate", "120/m")
    page.check("input[name=scopes][value='registry:read']")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist li")  # the next page's message, not whatever is there mid-navigation
    message = page.inner_text(".messagelist")
    shown = re.search(r"([A-Za-z0-9]{8}\.[A-Za-z0-9]{32})", message).group(1)
    key = APIKey.objects.get()
    assert shown.startswith(key.prefix) and key.scopes == ["registry:read"] and key.rate == "120/m"
    page.goto(f"{base}/admin/access/apikey/")
    assert shown not in page.content()  # never shown again
    assert "active" in page.inner_text("#result_list")
    page.check(f"input[name=_selected_action][value='{key.pk}']")
    page.select_option("select[name=action]", "revoke_keys")
    page.click("button[name=index]")
    from playwright.sync_api import expect  # imported where used, as the fixtures do

    # Retried until it holds: read at once, .messagelist was once still empty mid-navigation (CI).
    expect(page.locator(".messagelist")).to_contain_text("Revoked 1 key(s).")
    key.refresh_from_db()
    assert key.revoked
    assert Event.objects.filter(kind="apikey.revoked", actor="user:operator").exists()
