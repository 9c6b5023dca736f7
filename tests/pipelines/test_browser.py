"""A newcomer in a real browser: build a pipeline in the admin, reorder steps by dragging, dry-run a packet."""

from __future__ import annotations

import json

import pytest

from pipelines.models import Pipeline, Run
from tests.browser.conftest import admin_login, browser_page  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def fill_step(page, index: int, name: str, kind: str, priority: int, config: dict) -> None:  # type: ignore[no-untyped-def]
    page.fill(f"#id_steps-{index}-name", name)
    page.select_option(f"#id_steps-{index}-kind", kind)
    page.fill(f"#id_steps-{index}-priority", str(priority))
    page.fill(f"#id_steps-{index}-config", json.dumps(config))


def test_build_reorder_and_dry_run_a_pipeline(admin_login) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    page, base = admin_login
    page.goto(f"{base}/admin/pipelines/pipeline/add/")
    page.fill("#id_slug", "orders")
    page.fill("#id_name", "Orders")
    fill_step(
        page, 0, "route", "route", 10, {"rules": [{"when": "contains(tags, 'big')", "to": "fast"}], "default": "slow"}
    )
    page.click("#steps-group .add-row a")
    fill_step(
        page,
        1,
        "tag",
        "transform",
        20,
        {"operations": [{"op": "add_tag", "value": "big"}, {"op": "upper", "path": "payload.code"}]},
    )
    # Drag "tag" above "route": priorities are renumbered in the new order.
    page.drag_and_drop("#steps-1", "#steps-0")
    assert page.input_value("#id_steps-1-priority") == "10" and page.input_value("#id_steps-0-priority") == "20"
    page.click("input[name=_continue]")
    page.wait_for_selector("#pipeline-dry-run")
    pipeline = Pipeline.objects.get(slug="orders")
    assert {s.name: s.priority for s in pipeline.steps.all()} == {"tag": 10, "route": 20}

    page.fill("#pipeline-dry-run textarea", json.dumps({"payload": {"code": "ab"}}))
    page.click("#pipeline-dry-run input[type=submit]")
    page.wait_for_selector("#dry-run-result")
    assert page.inner_text(".dry-run-status") == "succeeded"
    assert page.inner_text(".dry-run-routes") == "fast"
    output = json.loads(page.inner_text(".dry-run-output"))
    assert output["payload"] == {"code": "AB"} and output["tags"] == ["big"]
    rows = page.inner_text(".dry-run-trace tbody")
    assert rows.index("tag") < rows.index("route") and "(changed)" in rows
    assert not Run.objects.exists()
