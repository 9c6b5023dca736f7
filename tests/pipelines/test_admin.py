"""Admin: build a pipeline with inline steps, validation errors on the step, dry run, actions, runs/metrics."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model

from controlplane.events.models import Event
from pipelines.models import Delivery, Pipeline, Run
from tests.pipelines.factories import PipelineFactory, transform_step

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):  # type: ignore[no-untyped-def]
    user = get_user_model().objects.create_superuser("ops", "ops@example.com", "pw-for-tests-only")
    client.force_login(user)
    return client


def form_data(steps: list[dict], **fields) -> dict:  # type: ignore[no-untyped-def]
    data = {
        "slug": "orders",
        "name": "Orders",
        "description": "",
        "enabled": "on",
        "error_policy": "stop",
        "steps-TOTAL_FORMS": str(len(steps)),
        "steps-INITIAL_FORMS": "0",
        "steps-MIN_NUM_FORMS": "0",
        "steps-MAX_NUM_FORMS": "1000",
    }
    data.update(fields)
    for index, step in enumerate(steps):
        data.update(
            {
                f"steps-{index}-name": step["name"],
                f"steps-{index}-kind": step["kind"],
                f"steps-{index}-priority": str(step.get("priority", 100)),
                f"steps-{index}-enabled": "on",
                f"steps-{index}-condition": step.get("condition", ""),
                f"steps-{index}-config": json.dumps(step["config"]),
                f"steps-{index}-on_error": "fail",
            }
        )
    return data


def test_add_a_pipeline_with_steps_through_the_services(staff) -> None:  # type: ignore[no-untyped-def]
    steps = [transform_step("b", priority=20), transform_step("a", priority=10)]
    response = staff.post("/admin/pipelines/pipeline/add/", form_data(steps))
    assert response.status_code == 302, response.content.decode()[:2000]
    pipeline = Pipeline.objects.get(slug="orders")
    assert pipeline.version == 1 and sorted(pipeline.steps.values_list("name", flat=True)) == ["a", "b"]
    event = Event.objects.get(kind="pipeline.changed")
    assert event.actor == "user:ops" and event.data["action"] == "created"
    page = staff.get(f"/admin/pipelines/pipeline/{pipeline.pk}/change/").content.decode()
    assert page.index('value="a"') < page.index('value="b"'), "steps inline are ordered by priority"


def test_invalid_step_shows_the_error_on_the_step_and_saves_nothing(staff) -> None:  # type: ignore[no-untyped-def]
    steps = [transform_step("ok"), {"name": "broken", "kind": "filter", "config": {"when": "x[["}}]
    response = staff.post("/admin/pipelines/pipeline/add/", form_data(steps))
    assert response.status_code == 200
    html = response.content.decode()
    assert "step &#x27;broken&#x27;" in html and "Invalid JMESPath" in html
    assert not Pipeline.objects.exists() and not Event.objects.exists()


def test_change_bumps_the_version(staff) -> None:  # type: ignore[no-untyped-def]
    pipeline = PipelineFactory(slug="orders", steps=[transform_step("a")])
    step = pipeline.steps.get()
    data = form_data([transform_step("a", priority=5)], name="Renamed")
    data.update({"steps-INITIAL_FORMS": "1", "steps-0-id": str(step.pk), "steps-0-pipeline": str(pipeline.pk)})
    response = staff.post(f"/admin/pipelines/pipeline/{pipeline.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    pipeline.refresh_from_db()
    assert (pipeline.version, pipeline.name, pipeline.steps.get().priority, pipeline.steps.get().pk) == (
        2,
        "Renamed",
        5,
        step.pk,
    )


def test_dry_run_page_shows_each_step_and_persists_nothing(staff) -> None:  # type: ignore[no-untyped-def]
    steps = [
        {"name": "upper", "kind": "transform", "config": {"operations": [{"op": "upper", "path": "payload.code"}]}},
        {"name": "send", "kind": "route", "config": {"rules": [{"when": "`true`", "to": {"service": "billing"}}]}},
    ]
    pipeline = PipelineFactory(slug="orders", steps=steps)
    change = staff.get(f"/admin/pipelines/pipeline/{pipeline.pk}/change/").content.decode()
    assert "Dry run" in change and "Recent recorded runs" in change and "Metrics" in change
    response = staff.post(
        f"/admin/pipelines/pipeline/{pipeline.pk}/dry-run/", {"packet": json.dumps({"payload": {"code": "ab"}})}
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert 'class="dry-run-status">succeeded' in html and "service:billing" in html
    assert "&quot;code&quot;: &quot;ab&quot;" in html and "&quot;code&quot;: &quot;AB&quot;" in html  # before and after
    assert not Run.objects.exists() and not Delivery.objects.exists()
    bad = staff.post(f"/admin/pipelines/pipeline/{pipeline.pk}/dry-run/", {"packet": "{nope"}).content.decode()
    assert "Malformed JSON" in bad


def test_enable_and_disable_actions(staff) -> None:  # type: ignore[no-untyped-def]
    first, second = PipelineFactory(), PipelineFactory()
    staff.post("/admin/pipelines/pipeline/", {"action": "disable_pipelines", "_selected_action": [first.pk, second.pk]})
    assert not Pipeline.objects.filter(enabled=True).exists()
    assert set(Pipeline.objects.values_list("version", flat=True)) == {2}
    staff.post("/admin/pipelines/pipeline/", {"action": "enable_pipelines", "_selected_action": [first.pk]})
    assert list(Pipeline.objects.filter(enabled=True).values_list("pk", flat=True)) == [first.pk]


def _compiled(pipeline: Pipeline) -> bool:
    from pipelines.executor import compiled_pipelines
    from pipelines.selectors import compiled_pipeline

    compiled_pipeline(pipeline.pk, pipeline.version)
    return (pipeline.pk, pipeline.version) in compiled_pipelines


def test_delete_from_the_change_page_goes_through_the_service(staff, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    pipeline = PipelineFactory(slug="orders")
    assert _compiled(pipeline)
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(f"/admin/pipelines/pipeline/{pipeline.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302 and not Pipeline.objects.exists()
    event = Event.objects.get(kind="pipeline.changed", data__action="deleted")
    assert event.subject == "orders" and event.actor == "user:ops"
    from pipelines.executor import compiled_pipelines

    assert (pipeline.pk, pipeline.version) not in compiled_pipelines  # this process forgot it


def test_bulk_delete_selected_goes_through_the_service(staff, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    pipelines = [PipelineFactory(slug=f"p{i}") for i in range(3)]
    kept = PipelineFactory(slug="kept")
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(
            "/admin/pipelines/pipeline/",
            {"action": "delete_selected", "_selected_action": [p.pk for p in pipelines], "post": "yes"},
        )
    assert response.status_code == 302
    assert list(Pipeline.objects.values_list("slug", flat=True)) == ["kept"] and kept.pk
    deleted = Event.objects.filter(kind="pipeline.changed", data__action="deleted")
    assert sorted(deleted.values_list("subject", flat=True)) == ["p0", "p1", "p2"]
    assert set(deleted.values_list("actor", flat=True)) == {"user:ops"}
