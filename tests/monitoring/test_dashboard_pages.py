"""The operator dashboard: who may open it, what each page shows, search/pagination, forms and their errors."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from controlplane.events.models import Event
from monitoring.models import MaintenanceWindow, MetricPoint, MetricSeries, Resolution
from monitoring.points import floor_time
from registry.models import CheckStatus, InstanceStatus
from registry.services import check_ttl_update
from tests.registry.factories import CheckFactory, InstanceFactory, ServiceFactory

pytestmark = pytest.mark.django_db

PAGES = ["/dashboard/", "/dashboard/alerts/", "/dashboard/pipelines/", "/dashboard/events/", "/dashboard/live/state/"]


def status_points(service_id: int, *, days: dict[int, dict[str, float]], now=None) -> None:  # type: ignore[no-untyped-def]
    """Day points of the service's `status` series: days-ago -> seconds per status (as the roll-ups store them)."""
    now = now or timezone.now()
    series, _ = MetricSeries.objects.get_or_create(kind="service", target=str(service_id), metric="status")
    today = floor_time(now, 86400)
    MetricPoint.objects.bulk_create(
        [
            MetricPoint(
                series=series,
                resolution=Resolution.DAY,
                bucket=today - timedelta(days=ago),
                count=10,
                total=10,
                breakdown=breakdown,
                histogram=[0] * 5 + [10] + [0] * 13,
            )
            for ago, breakdown in days.items()
        ]
    )


@pytest.mark.parametrize("path", [*PAGES, "/dashboard/services/nope/"])
def test_anonymous_and_non_staff_users_are_sent_to_the_admin_login(client, django_user_model, path) -> None:  # type: ignore[no-untyped-def]
    response = client.get(path)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    user = django_user_model.objects.create_user("visitor", password="a-long-test-password")
    client.force_login(user)
    response = client.get(path)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_the_polling_fallback_returns_what_changed_since_an_event(admin_client, client) -> None:  # type: ignore[no-untyped-def]
    instance = InstanceFactory(service=ServiceFactory(name="poll-me"), instance_id="p1")
    CheckFactory(instance=instance, name="hb", kind="ttl", ttl=60)
    Event.objects.create(kind="test.before")
    start = admin_client.get("/dashboard/live/state/").json()
    assert start["changed"] == 0
    check_ttl_update(instance=instance, status=CheckStatus.CRITICAL, output="late")
    changed = admin_client.get(f"/dashboard/live/state/?since={start['last_event']}").json()
    assert changed["changed"] >= 2 and [s["status"] for s in changed["services"] if s["name"] == "poll-me"] == [
        "critical"
    ]
    assert admin_client.get("/dashboard/live/state/?since=abc").status_code == 400
    assert client.get("/dashboard/live/state/?since=0").status_code == 302  # staff only


def test_a_page_read_with_an_empty_event_log_polls_from_zero_and_gets_the_first_change(admin_client) -> None:  # type: ignore[no-untyped-def]
    """`since=0` is a position (nothing yet), not "baseline only": the first stored change must reach the page."""
    instance = InstanceFactory(service=ServiceFactory(name="first-change"), instance_id="f1")
    Event.objects.all().delete()
    assert 'data-last-event="0"' in admin_client.get("/dashboard/").content.decode()
    assert admin_client.get("/dashboard/live/state/?since=0").json() == {"last_event": 0, "changed": 0}
    CheckFactory(instance=instance, name="hb", kind="ttl", ttl=60)
    check_ttl_update(instance=instance, status=CheckStatus.CRITICAL, output="late")
    changed = admin_client.get("/dashboard/live/state/?since=0").json()
    assert changed["changed"] >= 1
    assert [s["status"] for s in changed["services"] if s["name"] == "first-change"] == ["critical"]
    # Without `since` the answer is the baseline only; a page that did not read the log does not say where it is.
    assert admin_client.get("/dashboard/live/state/").json() == {"last_event": changed["last_event"], "changed": 0}
    assert "data-last-event" not in admin_client.get("/dashboard/pipelines/").content.decode()


def test_live_stream_refuses_anyone_but_staff_and_answers_204_under_wsgi(
    client, admin_client, django_user_model
) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/dashboard/live/").status_code == 403
    client.force_login(django_user_model.objects.create_user("visitor", password="a-long-test-password"))
    assert client.get("/dashboard/live/").status_code == 403
    inactive = django_user_model.objects.create_user("gone", password="x" * 20, is_staff=True, is_active=False)
    client.force_login(inactive)
    assert client.get("/dashboard/live/").status_code in (302, 403)
    # The test client is a WSGI handler: EventSource is told to stop (204) and the page polls instead.
    assert admin_client.get("/dashboard/live/").status_code == 204


def test_landing_page_is_the_dashboard_for_staff_and_the_admin_for_others(
    client, admin_client, django_user_model
) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/")["Location"] == "/admin/login/?next=%2Fdashboard%2F"  # signs in, then lands on it
    assert admin_client.get("/")["Location"] == "/dashboard/"
    client.force_login(django_user_model.objects.create_user("visitor", password="a-long-test-password"))
    assert client.get("/")["Location"] == "/admin/"
    home = admin_client.get("/admin/").content.decode()
    assert 'href="/dashboard/"' in home and 'id="monitoring-links"' in home  # header and index link


def test_overview_lists_failing_services_first_with_status_in_words(admin_client) -> None:  # type: ignore[no-untyped-def]
    ok = ServiceFactory(name="aaa-ok")
    InstanceFactory(service=ok, status=InstanceStatus.PASSING)
    bad = ServiceFactory(name="zzz-bad")
    InstanceFactory(service=bad, status=InstanceStatus.CRITICAL)
    warn = ServiceFactory(name="mmm-warn")
    InstanceFactory(service=warn, status=InstanceStatus.WARNING)
    html = admin_client.get("/dashboard/").content.decode()
    assert html.index("zzz-bad") < html.index("mmm-warn") < html.index("aaa-ok")
    # Never colour alone: every status badge carries its icon and its word.
    assert '<span aria-hidden="true">✖</span> critical' in html
    assert '<span aria-hidden="true">✔</span> passing' in html
    assert 'data-count="instances-critical">1<' in html
    ServiceFactory(name="no-instances")
    InstanceFactory(service=bad, status=InstanceStatus.PASSING)  # still critical: the worst instance decides
    from monitoring.selectors.dashboard import status_counts

    assert status_counts()["services"] == {"unknown": 1, "passing": 1, "warning": 1, "critical": 1, "maintenance": 0}
    assert 'src="/static/monitoring/live.js"' in html


def test_overview_search_status_filter_and_pagination_happen_on_the_server(admin_client) -> None:  # type: ignore[no-untyped-def]
    for index in range(30):
        InstanceFactory(service=ServiceFactory(name=f"billing-{index:02d}"), status=InstanceStatus.PASSING)
    InstanceFactory(service=ServiceFactory(name="search-me"), status=InstanceStatus.CRITICAL)
    page1 = admin_client.get("/dashboard/?q=billing").content.decode()
    assert "billing-00" in page1 and "billing-29" not in page1 and "search-me" not in page1
    assert "page 1 of 2 (30)" in page1 and "q=billing&amp;status=&amp;page=2" in page1
    page2 = admin_client.get("/dashboard/?q=billing&page=2").content.decode()
    assert "billing-29" in page2 and "billing-00" not in page2
    only_critical = admin_client.get("/dashboard/?status=critical").content.decode()
    assert "search-me" in only_critical and "billing-00" not in only_critical
    # Odd input is not an error: a page past the end is the last page, a NUL is dropped.
    assert admin_client.get("/dashboard/?page=999&q=billing").status_code == 200
    assert admin_client.get("/dashboard/?page=abc").status_code == 200


def test_service_page_shows_uptime_windows_the_90_day_bar_latency_and_admin_links(admin_client) -> None:  # type: ignore[no-untyped-def]
    service = ServiceFactory(name="payments", display_name="Payments API")
    instance = InstanceFactory(service=service, instance_id="pay-1", status=InstanceStatus.PASSING)
    check = CheckFactory(instance=instance, name="healthz", status=CheckStatus.PASSING)
    status_points(
        service.pk,
        days={
            1: {"passing": 86400},
            2: {"passing": 86400 - 3600, "critical": 3600},
            3: {"maintenance": 86400},
        },
    )
    response = admin_client.get("/dashboard/services/payments/")
    html = response.content.decode()
    assert response.status_code == 200
    assert html.count('class="day ') == 90  # one segment per day
    assert html.count('data-status="down"') == 1 and html.count('data-status="maintenance"') >= 1
    assert 'data-status="passing"' in html
    for window in ("1h", "24h", "7d", "30d", "90d"):
        assert f"<th>{window}</th>" in html
    assert "<polyline" not in html or "p50" in html
    assert "Latency p50 (solid) and p95 (dashed)" in html
    assert f"/admin/registry/service/{service.pk}/change/" in html
    assert f"/admin/registry/instance/{instance.pk}/change/" in html
    assert f"/admin/registry/check/{check.pk}/change/" in html
    assert admin_client.get("/dashboard/services/missing/").status_code == 404


def test_service_page_lists_its_recent_transitions(admin_client) -> None:  # type: ignore[no-untyped-def]
    instance = InstanceFactory(service=ServiceFactory(name="batch"), instance_id="w1")
    CheckFactory(instance=instance, name="heartbeat", kind="ttl", ttl=60)
    check_ttl_update(instance=instance, status=CheckStatus.CRITICAL, output="late")
    assert Event.objects.filter(kind="check.status_changed").exists()
    html = admin_client.get("/dashboard/services/batch/").content.decode()
    assert "batch/w1/heartbeat" in html


def test_pipeline_page_shows_per_step_figures(admin_client) -> None:  # type: ignore[no-untyped-def]
    from pipelines.models import Pipeline, Step

    pipeline = Pipeline.objects.create(slug="orders", name="Orders")
    Step.objects.create(pipeline=pipeline, name="clean", kind="transform", config={})
    series = MetricSeries.objects.create(kind="step", target="orders/clean", metric="packets")
    minute = floor_time(timezone.now() - timedelta(minutes=30), 60)
    MetricPoint.objects.create(
        series=series, resolution=Resolution.MINUTE, bucket=minute, count=40, total=40,
        breakdown={"errors": 3, "dropped": 2, "sent": 35}, histogram=[0] * 6 + [40] + [0] * 12,
    )  # fmt: skip
    html = admin_client.get("/dashboard/pipelines/orders/").content.decode()
    assert "<td>clean <small>transform</small></td><td>40</td><td>3</td><td>2</td>" in html
    assert "Packets (grey), errors (red) and drops (amber)" in html
    # Drops over time, like packets and errors: the bin of the point carries them, and only that bin.
    assert html.count('class="drops"') == 1 and "40 packets, 3 errors, 2 drops" in html
    peak = re.search(r"p95 latency per bin, peak (\d+) ms", html)
    assert peak and 50 <= int(peak.group(1)) <= 75, peak  # 40 packets in the 50-75 ms bucket
    assert "orders" in admin_client.get("/dashboard/pipelines/?q=ord").content.decode()
    assert "orders" not in admin_client.get("/dashboard/pipelines/?q=zzz").content.decode().split("<main>")[1]


def test_maintenance_window_created_from_the_alerts_page(admin_client) -> None:  # type: ignore[no-untyped-def]
    ServiceFactory(name="payments")
    response = admin_client.post(
        "/dashboard/alerts/",
        {
            "form": "maintenance",
            "maintenance-name": "DB upgrade",
            "maintenance-scope": "service",
            "maintenance-service": "payments",
            "maintenance-kind": "one_off",
            "maintenance-starts_at": "2030-01-02T10:00",
            "maintenance-ends_at": "2030-01-02T12:00",
            "maintenance-timezone": "Europe/Paris",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    window = MaintenanceWindow.objects.get()
    assert window.name == "DB upgrade" and window.service.name == "payments" and window.created_by == "user:admin"
    assert window.starts_at.isoformat() == "2030-01-02T09:00:00+00:00"  # 10:00 in Paris (UTC+1 in winter)
    assert Event.objects.filter(kind="maintenance.created", actor="user:admin").exists()


@pytest.mark.parametrize(
    ("fields", "error_field"),
    [
        ({"maintenance-timezone": "Mars/Olympus"}, "timezone"),
        ({"maintenance-timezone": "../../etc/passwd"}, "timezone"),
        ({"maintenance-service": "nope"}, "service"),
        ({"maintenance-scope": "galaxy"}, "scope"),
        ({"maintenance-starts_at": "yesterday"}, "starts_at"),
        ({"maintenance-kind": "recurring"}, None),  # no weekdays, time or duration: the model's rules refuse it
    ],
)
def test_bad_maintenance_input_is_a_field_error_and_saves_nothing(admin_client, fields, error_field) -> None:  # type: ignore[no-untyped-def]
    ServiceFactory(name="payments")
    data = {
        "form": "maintenance",
        "maintenance-name": "x",
        "maintenance-scope": "service",
        "maintenance-service": "payments",
        "maintenance-kind": "one_off",
        "maintenance-starts_at": "2030-01-02T10:00",
        "maintenance-ends_at": "2030-01-02T12:00",
        "maintenance-timezone": "UTC",
        **fields,
    }
    response = admin_client.post("/dashboard/alerts/", data)
    assert response.status_code == 400
    form = response.context["maintenance_form"]
    assert form.errors
    if error_field:
        assert error_field in form.errors, form.errors
    assert MaintenanceWindow.objects.count() == 0


@pytest.mark.parametrize(
    ("fields", "error_field"),
    [
        ({"silence-matchers": "no operator here"}, "matchers"),
        ({"silence-matchers": "service="}, "matchers"),
        ({"silence-matchers": ""}, "matchers"),
        ({"silence-ends_at": "2020-01-01T00:00", "silence-duration_minutes": ""}, "ends_at"),
        ({"silence-duration_minutes": "", "silence-ends_at": ""}, "ends_at"),
        ({"silence-timezone": "Not/AZone"}, "timezone"),
        ({"silence-comment": ""}, "comment"),
    ],
)
def test_bad_silence_input_is_a_field_error_and_saves_nothing(admin_client, fields, error_field) -> None:  # type: ignore[no-untyped-def]
    from monitoring.models import Silence

    data = {
        "form": "silence",
        "silence-matchers": "service=payments",
        "silence-duration_minutes": "60",
        "silence-comment": "deploy",
        "silence-timezone": "UTC",
        **fields,
    }
    response = admin_client.post("/dashboard/alerts/", data)
    assert response.status_code == 400
    assert error_field in response.context["silence_form"].errors
    assert Silence.objects.count() == 0


def test_silence_created_from_the_alerts_page_through_the_silence_service(admin_client) -> None:  # type: ignore[no-untyped-def]
    from monitoring.models import Silence

    response = admin_client.post(
        "/dashboard/alerts/",
        {
            "form": "silence",
            "silence-matchers": "service=payments\nseverity=~crit.*",
            "silence-starts_at": "2030-06-01T10:00",
            "silence-ends_at": "2030-06-01T12:00",
            "silence-timezone": "America/New_York",
            "silence-comment": "planned deploy",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    silence = Silence.objects.get()
    assert silence.matchers == [
        {"name": "service", "op": "=", "value": "payments"},
        {"name": "severity", "op": "=~", "value": "crit.*"},
    ]
    assert silence.starts_at.isoformat() == "2030-06-01T14:00:00+00:00"  # 10:00 EDT
    assert "admin" in silence.author and silence.comment == "planned deploy"
    assert Event.objects.filter(kind="silence.created").exists()
    page = admin_client.get("/dashboard/alerts/").content.decode()
    assert "service=payments" in page and "planned deploy" in page and "pending" in page


def test_a_matcher_the_silence_service_refuses_comes_back_as_a_field_error(admin_client) -> None:  # type: ignore[no-untyped-def]
    from monitoring.models import Silence

    response = admin_client.post(
        "/dashboard/alerts/",
        {"form": "silence", "silence-matchers": "service=~(unclosed", "silence-duration_minutes": "30",
         "silence-comment": "x", "silence-timezone": "UTC"},
    )  # fmt: skip
    assert response.status_code == 400
    assert "matchers" in response.context["silence_form"].errors
    assert Silence.objects.count() == 0


def test_history_reads_each_time_once_from_the_coarsest_final_level() -> None:
    from monitoring.models import RollupWatermark
    from monitoring.selectors.uptime_days import status_seconds

    service = ServiceFactory(name="levels")
    now = timezone.now()
    today = floor_time(now, 86400)
    series = MetricSeries.objects.create(kind="service", target=str(service.pk), metric="status")
    yesterday = today - timedelta(days=1)
    rows = [
        MetricPoint(series=series, resolution=Resolution.DAY, bucket=yesterday, count=1, breakdown={"passing": 86400})
    ]
    # The same day again as hour points (the roll-up keeps both levels): must not be counted twice.
    rows += [
        MetricPoint(
            series=series,
            resolution=Resolution.HOUR,
            bucket=yesterday + timedelta(hours=h),
            count=1,
            breakdown={"passing": 3600},
        )
        for h in range(24)
    ]
    # Today: no day point yet; one finished hour, and minutes of the current hour not rolled up to hours.
    hour = floor_time(now, 3600)
    if hour > today:
        rows.append(
            MetricPoint(series=series, resolution=Resolution.HOUR, bucket=today, count=1, breakdown={"critical": 3600})
        )
    minute = floor_time(now, 60) - timedelta(minutes=1)
    if minute >= hour:
        rows.append(
            MetricPoint(series=series, resolution=Resolution.MINUTE, bucket=minute, count=1, breakdown={"passing": 60})
        )
    MetricPoint.objects.bulk_create(rows)
    RollupWatermark.objects.create(name="day", position=today)
    RollupWatermark.objects.create(name="hour", position=hour)
    days = status_seconds(kind="service", targets=[str(service.pk)], days=2, now=now)[str(service.pk)]
    assert days[0].share.passing == 86400 and days[0].status == "passing"
    expected_critical = 3600 if hour > today else 0
    assert days[1].share.down == expected_critical
    assert days[1].share.passing == (60 if minute >= hour else 0)
