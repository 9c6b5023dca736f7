"""/healthz, /readyz, /metrics, the OpenAPI schema and docs page."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.conftest import key_client

pytestmark = pytest.mark.django_db


def test_healthz_and_readyz_report_components() -> None:
    client = Client()
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    body = ready.json()
    assert set(body["components"]) == {"database", "cache", "coherence", "broker", "workers", "beat", "checks"}
    assert body["components"]["coherence"]["status"] == "up"
    assert body["components"]["database"]["status"] == "up"
    assert ready.status_code == 200  # workers/beat are not required by default


def test_readyz_is_503_when_a_required_component_is_down(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("READYZ_REQUIRED", "database,cache,broker,beat")
    response = Client().get("/readyz")  # no beat runs in this test
    assert response.status_code == 503
    assert response.json()["components"]["beat"]["status"] == "down"


def test_metrics_count_requests_by_route_template() -> None:
    client = key_client("events:read")
    client.get("/api/v1/events/")
    text = Client().get("/metrics").content.decode()
    assert 'controlplane_http_requests_total{method="GET",route="/api/v1/events/",status="200"}' in text
    assert "controlplane_http_request_duration_seconds_bucket" in text


def test_metrics_token_is_enforced_when_set(settings) -> None:  # type: ignore[no-untyped-def]
    settings.METRICS_TOKEN = "tok"
    settings.METRICS_ALLOW_NETWORKS = ["0.0.0.0/0", "::/0"]  # the default once a token is set
    client = Client()
    for remote in ("127.0.0.1", "203.0.113.9"):
        refused = client.get("/metrics", REMOTE_ADDR=remote)
        assert refused.status_code == 401 and refused["Content-Type"] == "application/problem+json"
        assert client.get("/metrics", REMOTE_ADDR=remote, HTTP_AUTHORIZATION="Bearer nope").status_code == 401
        assert client.get("/metrics", REMOTE_ADDR=remote, HTTP_AUTHORIZATION="Bearer tokx").status_code == 401
        assert client.get("/metrics", REMOTE_ADDR=remote, HTTP_AUTHORIZATION="Bearer tok").status_code == 200


def test_metrics_are_served_to_loopback_only_by_default(settings) -> None:  # type: ignore[no-untyped-def]
    assert settings.METRICS_ALLOW_NETWORKS == ["127.0.0.0/8", "::1/128"]  # no METRICS_TOKEN in tests
    client = Client()
    for remote in ("127.0.0.1", "127.8.9.10", "::1"):
        assert client.get("/metrics", REMOTE_ADDR=remote).status_code == 200, remote
    for remote in ("10.0.0.5", "192.168.1.2", "2001:db8::1", "::ffff:10.0.0.5", "", "not-an-ip"):
        refused = client.get("/metrics", REMOTE_ADDR=remote)
        assert refused.status_code == 403, remote
        assert refused["Content-Type"] == "application/problem+json"
        assert b"controlplane_http" not in refused.content


def test_metrics_allow_list_and_token_both_apply(settings) -> None:  # type: ignore[no-untyped-def]
    settings.METRICS_ALLOW_NETWORKS = ["10.1.0.0/16"]
    settings.METRICS_TOKEN = "tok"
    client = Client()
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Bearer tok").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 401
    assert client.get("/metrics", REMOTE_ADDR="10.2.0.1", HTTP_AUTHORIZATION="Bearer tok").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_AUTHORIZATION="Bearer tok").status_code == 403


def test_metrics_network_default_follows_the_token_setting() -> None:
    """The settings module itself: loopback by default, any address once a token is required."""
    import subprocess
    import sys

    from tests.conftest import subprocess_env

    code = "from django.conf import settings; print(settings.METRICS_ALLOW_NETWORKS)"
    for token, expected in (("", "['127.0.0.0/8', '::1/128']"), ("t0k", "['0.0.0.0/0', '::/0']")):
        env = subprocess_env(METRICS_TOKEN=token, DJANGO_SETTINGS_MODULE="controlplane.settings")
        env.pop("METRICS_ALLOW_NETWORKS", None)
        out = subprocess.run(
            [sys.executable, "-c", f"import django; django.setup(); {code}"], env=env, capture_output=True, text=True
        )
        assert out.stdout.strip() == expected, out.stderr[-2000:]


def test_openapi_schema_documents_auth_and_error_responses() -> None:
    response = Client().get("/api/schema/?format=json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["components"]["securitySchemes"]["ApiKeyAuth"]["in"] == "header"
    operation = schema["paths"]["/api/v1/events/"]["get"]
    for status in ("400", "401", "403", "404", "429"):
        assert status in operation["responses"], status
        assert "application/problem+json" in operation["responses"][status]["content"]


def test_swagger_ui_is_served_from_local_static_files() -> None:
    html = Client().get("/api/docs/").content.decode()
    assert "swagger-ui" in html
    assert "cdn" not in html.lower() and "unpkg" not in html.lower()
    assert "/static/drf_spectacular_sidecar/" in html


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_metrics_are_merged_across_gunicorn_workers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """In multiprocess mode every worker's samples are summed into one /metrics answer."""
    import re
    import urllib.request

    from tests.conftest import subprocess_env
    from tests.processes import gunicorn

    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    env = subprocess_env(PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    with gunicorn(env, tmp_path, workers=3) as base:
        for _ in range(30):
            urllib.request.urlopen(f"{base}/healthz").read()  # noqa: S310 - loopback
        text = urllib.request.urlopen(f"{base}/metrics").read().decode()  # noqa: S310
    match = re.search(r'controlplane_http_requests_total\{method="GET",route="/healthz",status="200"\} ([\d.]+)', text)
    assert match, text[:2000]
    assert float(match.group(1)) >= 30  # wait_http's probes count too
    assert len(list(metrics_dir.glob("counter_*.db"))) >= 2  # more than one worker wrote samples
