"""The metrics API: series (step selection, the 2,000-point cap, constant query count), uptime, bad input
answered 400 problem+json with nothing changed, scopes; maintenance windows over the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from monitoring.models import MaintenanceWindow, MetricPoint, MetricSeries, Resolution, RollupWatermark
from monitoring.selectors.series import choose_step
from monitoring.services import rollups
from tests.monitoring.factories import write_results
from tests.registry.factories import CheckFactory

pytestmark = pytest.mark.django_db
SERIES = "/api/v1/metrics/series/"
UPTIME = "/api/v1/metrics/uptime/"


def iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fill(series: MetricSeries, resolution: int, start: datetime, buckets: int, **fields) -> None:  # type: ignore[no-untyped-def]
    MetricPoint.objects.bulk_create(
        MetricPoint(series=series, resolution=resolution, bucket=start + timedelta(seconds=resolution * i), **fields)
        for i in range(buckets)
    )


@pytest.fixture
def recent_check():  # type: ignore[no-untyped-def]
    """A check with 30 minutes of results ending a few minutes ago, rolled up."""
    now = timezone.now().replace(second=0, microsecond=0)
    start = now - timedelta(minutes=40)
    RollupWatermark.objects.create(name="minute", position=start)
    check = CheckFactory(interval=10, timeout=2)
    write_results(check, start, 180, latency=30)
    rollups.rollup_minutes()
    return check, start


def test_series_of_a_check_by_name(client_for, recent_check) -> None:
    check, start = recent_check
    name = f"{check.instance.service.name}/{check.instance.instance_id}/{check.name}"
    response = client_for("monitoring:read").get(
        SERIES,
        {
            "kind": "check",
            "target": name,
            "metric": "results",
            "from": iso(start),
            "to": iso(start + timedelta(hours=1)),
        },
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["step"], body["resolution"], body["unit"]) == (60, 60, "results")
    assert len(body["points"]) == 60
    values = [p["value"] for p in body["points"]]
    assert values[:30] == [6.0] * 30 and values[-1] is None  # not rolled up yet: unknown, not zero
    latency = (
        client_for("monitoring:read")
        .get(
            SERIES,
            {"kind": "check", "target": str(check.pk), "metric": "latency_p95", "from": iso(start), "step": "5m"},
        )
        .json()
    )
    assert latency["step"] == 300 and 25 <= latency["points"][0]["value"] <= 50


def test_step_is_chosen_for_at_most_2000_points_from_a_level_that_still_has_them() -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    assert choose_step(now - timedelta(hours=24), now, None, now) == 60  # 1,440 minute points
    assert choose_step(now - timedelta(hours=40), now, None, now) == 300  # 2,400 minutes is too many
    # a week: minutes are kept 48 h, so hour points (168), not 15-minute steps of missing minutes
    assert choose_step(now - timedelta(days=7), now, None, now) == 3600
    assert choose_step(now - timedelta(days=90), now, None, now) == 3 * 3600
    assert choose_step(now - timedelta(days=700), now, None, now) == 86400


def test_series_step_served_by_the_coarsest_level_and_capped(client_for) -> None:
    series = MetricSeries.objects.create(kind="route", target="GET /api/v1/services/", metric="requests")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    fill(series, Resolution.HOUR, start, 48, count=10)
    fill(series, Resolution.MINUTE, start, 60 * 48, count=1)  # would double count if both were read
    RollupWatermark.objects.create(name="minute", position=start + timedelta(hours=48))
    RollupWatermark.objects.create(name="hour", position=start + timedelta(hours=48))
    api = client_for("monitoring:read")
    base = {"kind": "route", "target": "GET /api/v1/services/", "metric": "requests", "from": iso(start)}
    body = api.get(SERIES, {**base, "to": iso(start + timedelta(hours=48)), "step": "1h"}).json()
    assert (body["resolution"], len(body["points"])) == (3600, 48)
    assert {p["value"] for p in body["points"]} == {10.0}
    body = api.get(SERIES, {**base, "to": iso(start + timedelta(hours=48)), "step": "6h"}).json()
    assert (body["resolution"], [p["value"] for p in body["points"]]) == (3600, [60.0] * 8)
    body = api.get(SERIES, {**base, "to": iso(start + timedelta(hours=2)), "step": "15m"}).json()
    assert (body["resolution"], [p["value"] for p in body["points"]]) == (60, [15.0] * 8)
    # 2,001 points asked for: refused, with the field named
    refused = api.get(SERIES, {**base, "to": iso(start + timedelta(minutes=2001)), "step": "60"})
    assert refused.status_code == 400 and refused["Content-Type"] == "application/problem+json"
    assert "step" in refused.json()["errors"]
    fitted = api.get(SERIES, {**base, "to": iso(start + timedelta(minutes=2000)), "step": "60"}).json()
    assert len(fitted["points"]) == 2000


@pytest.mark.parametrize(
    "params, field",
    [
        ({"kind": "nope"}, "kind"),
        ({"metric": "latency_p42"}, "metric"),
        ({"from": "2026-01-02T00:00:00", "to": "2026-01-03T00:00:00Z"}, "from"),  # no offset
        ({"from": "yesterday"}, "from"),
        ({"from": "2026-01-03T00:00:00Z", "to": "2026-01-02T00:00:00Z"}, "to"),
        ({"from": "1900-01-01T00:00:00Z"}, "from"),
        ({"step": "90"}, "step"),
        ({"step": "-60"}, "step"),
        ({"step": "1w"}, "step"),
        ({"step": "0"}, "step"),
        ({"target": "nosuch/instance/check"}, "target"),
    ],
)
def test_series_bad_input_is_a_400_problem(client_for, params, field) -> None:  # type: ignore[no-untyped-def]
    check = CheckFactory()
    query = {"kind": "check", "target": str(check.pk), "metric": "results", **params}
    before = MetricSeries.objects.count()
    response = client_for("monitoring:read").get(SERIES, query)
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert field in response.json()["errors"]
    assert MetricSeries.objects.count() == before


def test_series_query_count_does_not_grow_with_the_data(client_for) -> None:
    api = client_for("monitoring:read")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    RollupWatermark.objects.create(name="minute", position=start + timedelta(days=3))
    RollupWatermark.objects.create(name="hour", position=start + timedelta(days=2))

    def queries(target: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            response = api.get(
                SERIES,
                {
                    "kind": "route",
                    "target": target,
                    "metric": "requests",
                    "from": iso(start),
                    "to": iso(start + timedelta(days=3)),
                    "step": "1h",
                },
            )
        assert response.status_code == 200
        # the read's own queries (the key's bookkeeping — last use, re-checks — comes and goes with time)
        return len([q for q in captured.captured_queries if "monitoring_" in q["sql"]])

    small = MetricSeries.objects.create(kind="route", target="GET /small/", metric="requests")
    fill(small, Resolution.HOUR, start, 2, count=1)
    baseline = queries("GET /small/")
    assert baseline == 3  # series, watermarks, points
    big = MetricSeries.objects.create(kind="route", target="GET /big/", metric="requests")
    fill(big, Resolution.HOUR, start, 48, count=5)
    fill(big, Resolution.MINUTE, start + timedelta(days=2), 1440, count=1)
    for n in range(200):  # other series in the store
        fill(MetricSeries.objects.create(kind="route", target=f"GET /other/{n}/", metric="requests"), 3600, start, 5)
    assert queries("GET /big/") == baseline


def test_uptime_api(client_for) -> None:
    now = timezone.now().replace(second=0, microsecond=0)
    RollupWatermark.objects.create(name="minute", position=now - timedelta(minutes=70))
    check = CheckFactory()
    write_results(check, now - timedelta(minutes=70), 6 * 70)
    rollups.rollup_minutes()
    service = check.instance.service.name
    response = client_for("monitoring:read").get(UPTIME, {"target": f"service:{service}", "windows": "1h,24h"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["target"] == f"service:{service}"
    hour, day = body["windows"]
    assert hour["window"] == "1h" and hour["uptime"] == 1.0 and hour["unknown_seconds"] == 0
    assert day["uptime"] == pytest.approx(3600 * 1.1 / 86400, abs=0.01) or day["uptime"] < 0.1
    assert day["unknown_seconds"] > 80000
    default = client_for("monitoring:read").get(UPTIME, {"target": f"service:{service}"}).json()
    assert [w["window"] for w in default["windows"]] == ["1h", "24h", "7d", "30d", "90d"]


@pytest.mark.parametrize(
    "params, field",
    [
        ({"target": "web"}, "target"),
        ({"target": "pipeline:web"}, "target"),
        ({"target": "service:nosuch"}, "target"),
        ({"windows": "1h,1y"}, "windows"),
        ({"windows": "0h"}, "windows"),
        ({"windows": "1000d"}, "windows"),
        ({"windows": "1h,1h"}, "windows"),
        ({"windows": ""}, "windows"),
    ],
)
def test_uptime_bad_input_is_a_400_problem(client_for, params, field) -> None:  # type: ignore[no-untyped-def]
    check = CheckFactory()
    response = client_for("monitoring:read").get(UPTIME, {"target": f"service:{check.instance.service.name}", **params})
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert field in response.json()["errors"]


def test_metrics_need_the_monitoring_read_scope(client_for) -> None:
    check = CheckFactory()
    query = {"kind": "check", "target": str(check.pk), "metric": "results"}
    assert client_for("registry:read").get(SERIES, query).status_code == 403
    assert client_for("registry:read").get(UPTIME, {"target": f"check:{check.pk}"}).status_code == 403
    assert client_for("monitoring:read").get(SERIES, query).status_code == 200


def test_maintenance_windows_over_the_api(client_for) -> None:
    check = CheckFactory()
    instance = check.instance
    writer, reader = client_for("monitoring:write"), client_for("monitoring:read")
    created = writer.post(
        "/api/v1/maintenance/",
        {
            "name": "Patch Tuesday",
            "scope": "instance",
            "instance": f"{instance.service.name}/{instance.instance_id}",
            "kind": "recurring",
            "weekdays": [1],
            "start_time": "22:00",
            "duration_minutes": 90,
            "timezone": "Europe/Berlin",
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["origin"] == "manual" and body["created_by"].startswith("key:")
    assert reader.get(f"/api/v1/maintenance/{body['id']}/").json()["timezone"] == "Europe/Berlin"
    assert reader.post("/api/v1/maintenance/", {}, format="json").status_code == 403
    patched = writer.patch(f"/api/v1/maintenance/{body['id']}/", {"duration_minutes": 30}, format="json")
    assert patched.status_code == 200 and patched.json()["duration_minutes"] == 30
    assert writer.delete(f"/api/v1/maintenance/{body['id']}/").status_code == 204
    assert not MaintenanceWindow.objects.exists()


@pytest.mark.parametrize(
    "body, field",
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": "../../etc/passwd"}, "timezone"),
        ({"timezone": "localtime"}, "timezone"),  # the machine's setting, not an IANA zone
        ({"timezone": "Factory"}, "timezone"),
        ({"weekdays": [7]}, "weekdays"),
        ({"weekdays": []}, "weekdays"),
        ({"weekdays": [1, 1]}, "weekdays"),
        ({"start_time": None}, "start_time"),
        ({"duration_minutes": 0}, "duration_minutes"),
        ({"duration_minutes": 7 * 24 * 60 + 1}, "duration_minutes"),
        ({"kind": "one_off"}, "starts_at"),
        ({"kind": "one_off", "starts_at": "2026-01-02T00:00:00Z", "ends_at": "2026-01-01T00:00:00Z"}, "ends_at"),
        ({"kind": "one_off", "starts_at": "2026-01-02T00:00:00"}, "starts_at"),
        ({"scope": "service"}, "service"),
        ({"scope": "instance"}, "instance"),
        ({"scope": "service", "service": "nosuch"}, "service"),
        ({"scope": "galaxy"}, "scope"),
    ],
)
def test_bad_maintenance_windows_are_refused(client_for, body, field) -> None:  # type: ignore[no-untyped-def]
    good = {
        "name": "w",
        "scope": "everything",
        "kind": "recurring",
        "weekdays": [0],
        "start_time": "01:00",
        "duration_minutes": 60,
        "timezone": "UTC",
    }
    response = client_for("monitoring:write").post("/api/v1/maintenance/", {**good, **body}, format="json")
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert any(name.split(".")[0] == field for name in response.json()["errors"]), response.json()
    assert not MaintenanceWindow.objects.exists()
