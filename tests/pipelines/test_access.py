"""Config read through pipelines is authorized like the config API (issue #9 point 3).

Two namespaces: `alpha` (readable by the limited key) and `beta` (holding the value no limited key may see).
Every path that runs a pipeline (sync, batch, async, dry run, admin dry run), directly or through a routed
chain, and every path that saves a definition (API POST/PUT/PATCH, admin) is refused when the caller may not
read a namespace the run would read.
"""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from pipelines.models import Pipeline, Run
from pipelines.services import pipeline_update, run_execute
from tests.conftest import key_client
from tests.pipelines.factories import PipelineFactory, transform_step
from tests.pipelines.test_admin import form_data

pytestmark = pytest.mark.django_db

BETA_VALUE = "beta-only-value"


def enrich(namespace: str, name: str = "cfg") -> dict:
    return {
        "name": name,
        "kind": "enrich",
        "config": {"path": f"payload.{namespace}", "namespace": namespace, "key": "value"},
    }


def route_to(slug: str, name: str = "next") -> dict:
    return {"name": name, "kind": "route", "priority": 900, "config": {"rules": [], "default": {"pipeline": slug}}}


@pytest.fixture
def config() -> None:
    from configstore.services import config_entry_set, namespace_create

    for name, value in (("alpha", "alpha-value"), ("beta", BETA_VALUE)):
        namespace = namespace_create(name=name, actor="test")
        config_entry_set(namespace=namespace, key="value", value=value, actor="test")


def post(client, url: str, body) -> object:  # type: ignore[no-untyped-def]
    return client.post(url, data=json.dumps(body), content_type="application/json")


def refused(response, status: int = 403) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.content[:2000]
    assert response["Content-Type"] == "application/problem+json"
    assert BETA_VALUE not in response.content.decode()
    return response.json()


PIPELINES_ONLY = ("pipelines:run", "pipelines:read", "pipelines:write")


@pytest.mark.parametrize(
    ("scopes", "limits"),
    [(PIPELINES_ONLY, []), ((*PIPELINES_ONLY, "config:read"), ["alpha"])],
    ids=["pipelines-scopes-only", "limited-to-alpha"],
)
@pytest.mark.parametrize("path", ["run/", "run/?async=true", "batch/", "batch/?async=true", "dry-run/"])
def test_runs_reading_a_namespace_the_key_may_not_read_are_refused(config, scopes, limits, path) -> None:  # type: ignore[no-untyped-def]
    PipelineFactory(slug="direct", steps=[enrich("beta")])
    PipelineFactory(slug="entry", steps=[transform_step(), route_to("middle")])
    PipelineFactory(slug="middle", steps=[route_to("direct")])
    client = key_client(*scopes, namespaces=limits)
    assert client.get("/api/v1/config/beta/").status_code in (403, 404)  # the config API refuses it too
    body = [{"payload": {}}] if path.startswith("batch") else {"payload": {}}
    for slug in ("direct", "entry"):  # directly, and two routes down a chain
        problem = refused(post(client, f"/api/v1/pipelines/{slug}/{path}", body))
        assert "'beta'" in problem["detail"]
    assert not Run.objects.exists()  # nothing queued, nothing recorded


def test_the_same_runs_are_allowed_with_config_read_and_the_value_arrives(config) -> None:  # type: ignore[no-untyped-def]
    PipelineFactory(slug="direct", steps=[enrich("beta")])
    PipelineFactory(slug="entry", steps=[route_to("direct")])
    for client in (
        key_client("pipelines:run", "config:read"),
        key_client("pipelines:run", "config:read", namespaces=["alpha", "beta"]),
    ):
        chained = post(client, "/api/v1/pipelines/entry/run/", {"payload": {}}).json()
        assert chained["chained"][0]["packet"]["payload"]["beta"] == BETA_VALUE
        batch = post(client, "/api/v1/pipelines/direct/batch/", [{"payload": {}}]).json()
        assert batch["results"][0]["packet"]["payload"]["beta"] == BETA_VALUE


def test_an_alpha_limited_key_runs_what_reads_alpha_only(config) -> None:  # type: ignore[no-untyped-def]
    PipelineFactory(slug="a", steps=[enrich("alpha"), route_to("b")])
    PipelineFactory(slug="b", steps=[enrich("alpha", "again")])
    client = key_client("pipelines:run", "config:read", namespaces=["alpha"])
    body = post(client, "/api/v1/pipelines/a/run/", {"payload": {}}).json()
    assert body["status"] == "succeeded" and body["chained"][0]["packet"]["payload"]["alpha"] == "alpha-value"


def test_an_async_run_reads_only_what_was_authorized_at_submission(config) -> None:  # type: ignore[no-untyped-def]
    """The chain is changed to read beta after the alpha-limited key queued the run: the worker refuses it."""
    PipelineFactory(slug="a", steps=[enrich("alpha"), route_to("b")])
    b = PipelineFactory(slug="b", steps=[transform_step()])
    client = key_client("pipelines:run", "config:read", namespaces=["alpha"])
    accepted = post(client, "/api/v1/pipelines/a/run/?async=true", {"payload": {}})
    assert accepted.status_code == 202
    run = Run.objects.get(pk=accepted.json()["run_id"])
    assert run.config_namespaces == ["alpha"]
    pipeline_update(b, steps=[enrich("beta")])  # by an operator (the trusted system)

    assert run_execute(run_id=run.pk) == "succeeded"  # the root link succeeded; its chained run failed
    failed = Run.objects.get(pipeline=Pipeline.objects.get(slug="b"))
    assert failed.status == "failed" and "not authorized to read config namespace 'beta'" in failed.error
    assert BETA_VALUE not in json.dumps([failed.output, Run.objects.get(pk=run.pk).output])


@pytest.mark.parametrize("method", ["post", "put", "patch"])
def test_saving_a_definition_that_reads_what_the_key_may_not_is_refused(config, method) -> None:  # type: ignore[no-untyped-def]
    PipelineFactory(slug="reads-beta", steps=[enrich("beta")])
    PipelineFactory(slug="target", steps=[transform_step()])
    for scopes, limits in ((("pipelines:write",), []), (("pipelines:write", "config:read"), ["alpha"])):
        client = key_client(*scopes, namespaces=limits)
        for steps, where in (
            ([enrich("beta")], "steps.0.config"),
            ([transform_step(), route_to("reads-beta")], "steps.1.config"),
        ):
            body = {"slug": "target", "name": "T", "steps": steps}
            if method == "post":
                response = post(client, "/api/v1/pipelines/", {**body, "slug": "new"})
            else:
                response = getattr(client, method)(
                    "/api/v1/pipelines/target/", data=json.dumps(body), content_type="application/json"
                )
            problem = refused(response, 400)
            assert "'beta'" in " ".join(problem["errors"][where])
    assert not Pipeline.objects.filter(slug="new").exists()
    assert Pipeline.objects.get(slug="target").version == 1


def test_saving_what_the_key_may_read_is_allowed(config) -> None:  # type: ignore[no-untyped-def]
    PipelineFactory(slug="reads-alpha", steps=[enrich("alpha")])
    client = key_client("pipelines:write", "config:read", namespaces=["alpha"])
    steps = [enrich("alpha"), route_to("reads-alpha")]
    assert post(client, "/api/v1/pipelines/", {"slug": "new", "name": "N", "steps": steps}).status_code == 201


# --- the admin acts as the logged-in user -------------------------------------------------------------


def staff_client(client, *permissions: str):  # type: ignore[no-untyped-def]
    user = get_user_model().objects.create_user("staffer", "s@example.com", "pw-for-tests-only", is_staff=True)
    for codename in ("view_pipeline", "change_pipeline", "add_pipeline", "add_step", "change_step", *permissions):
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client.force_login(user)
    return client


def dry_run(client, pipeline: Pipeline):  # type: ignore[no-untyped-def]
    return client.post(
        f"/admin/pipelines/pipeline/{pipeline.pk}/dry-run/", {"packet": json.dumps({"payload": {}})}
    ).content.decode()


def test_admin_dry_run_without_config_view_permission_reads_nothing(config, client) -> None:  # type: ignore[no-untyped-def]
    direct = PipelineFactory(slug="direct", steps=[enrich("beta")])
    chained = PipelineFactory(slug="entry", steps=[route_to("direct")])
    staff = staff_client(client)
    for pipeline in (direct, chained):
        page = dry_run(staff, pipeline)
        assert "may not read" in page and BETA_VALUE not in page


def test_admin_dry_run_with_config_view_permission_shows_the_value(config, client) -> None:  # type: ignore[no-untyped-def]
    direct = PipelineFactory(slug="direct", steps=[enrich("beta")])
    assert BETA_VALUE in dry_run(staff_client(client, "view_entry"), direct)


def test_admin_save_of_an_enrich_step_needs_config_view_permission(config, client) -> None:  # type: ignore[no-untyped-def]
    PipelineFactory(slug="reads-beta", steps=[enrich("beta")])
    staff = staff_client(client)
    for steps in ([enrich("beta")], [route_to("reads-beta")]):
        response = staff.post("/admin/pipelines/pipeline/add/", form_data(steps))
        page = response.content.decode()
        assert response.status_code == 200 and "may not read" in page and "namespace &#x27;beta&#x27;" in page
    assert not Pipeline.objects.filter(slug="orders").exists()
    user = get_user_model().objects.get(username="staffer")
    user.user_permissions.add(Permission.objects.get(codename="view_entry"))
    client.force_login(get_user_model().objects.get(pk=user.pk))  # a fresh permission cache
    response = client.post("/admin/pipelines/pipeline/add/", form_data([enrich("beta")]))
    assert response.status_code == 302 and Pipeline.objects.filter(slug="orders").exists()


# --- reading a recorded run back is authorized like the run ------------------------------------------


def test_recorded_runs_hide_their_packets_from_keys_that_may_not_read_the_config(config) -> None:  # type: ignore[no-untyped-def]
    failing = {
        "name": "fail",
        "kind": "transform",
        "config": {"operations": [{"op": "cast", "path": "payload.beta", "type": "int"}]},
    }
    PipelineFactory(slug="direct", steps=[enrich("beta")])
    PipelineFactory(slug="entry", steps=[enrich("beta"), route_to("chained")])
    PipelineFactory(slug="chained", steps=[failing])  # reads nothing itself, but receives beta's value
    owner = key_client("pipelines:run", "pipelines:read", "config:read")
    recorded = post(owner, "/api/v1/pipelines/direct/run/?record=true", {"payload": {}}).json()["run_id"]
    post(owner, "/api/v1/pipelines/entry/run/", {"payload": {}})
    chained = Run.objects.get(pipeline__slug="chained")
    assert BETA_VALUE in json.dumps(chained.input) and chained.config_namespaces == ["beta"]

    assert BETA_VALUE in owner.get(f"/api/v1/runs/{recorded}/").content.decode()
    for other in (
        key_client("pipelines:run", "pipelines:read"),
        key_client("pipelines:run", "pipelines:read", "config:read", namespaces=["alpha"]),
    ):
        for url in (
            f"/api/v1/runs/{recorded}/",
            f"/api/v1/runs/{chained.pk}/",
            "/api/v1/pipelines/direct/runs/",
            "/api/v1/pipelines/chained/runs/",
        ):
            response = other.get(url)
            assert response.status_code == 200 and BETA_VALUE not in response.content.decode(), url
            assert "Hidden: it could read config namespace 'beta'" in response.content.decode()


def test_the_run_admin_hides_packets_from_staff_without_config_view_permission(config, client) -> None:  # type: ignore[no-untyped-def]
    PipelineFactory(slug="direct", steps=[enrich("beta")])
    run_id = post(
        key_client("pipelines:run", "config:read"), "/api/v1/pipelines/direct/run/?record=true", {"payload": {}}
    ).json()["run_id"]
    staff = staff_client(client, "view_run")
    page = staff.get(f"/admin/pipelines/run/{run_id}/change/")
    assert page.status_code == 200 and BETA_VALUE not in page.content.decode()
    user = get_user_model().objects.get(username="staffer")
    user.user_permissions.add(Permission.objects.get(codename="view_entry"))
    client.force_login(get_user_model().objects.get(pk=user.pk))
    assert BETA_VALUE in client.get(f"/admin/pipelines/run/{run_id}/change/").content.decode()


def test_the_run_failed_event_does_not_quote_errors_of_runs_that_read_config(config) -> None:  # type: ignore[no-untyped-def]
    from controlplane.events.models import Event

    cast = {
        "name": "fail",
        "kind": "transform",
        "config": {"operations": [{"op": "cast", "path": "payload.beta", "type": "int"}]},
    }
    PipelineFactory(slug="leaky", steps=[enrich("beta"), cast])
    body = post(key_client("pipelines:run", "config:read"), "/api/v1/pipelines/leaky/run/", {"payload": {}}).json()
    assert body["status"] == "failed" and BETA_VALUE in body["error"]  # the caller may read it
    event = Event.objects.get(kind="pipeline.run_failed", subject="leaky")
    assert BETA_VALUE not in json.dumps(event.data) and str(body["run_id"]) in event.data["error"]
    assert BETA_VALUE not in key_client("events:read").get("/api/v1/events/").content.decode()
