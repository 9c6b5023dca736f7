"""Per-route request metrics: counted in process memory by the tracing middleware (no query per request),
folded into minute points in a constant number of statements, late tallies counted once, concurrent
flushes from several processes adding up."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from controlplane.observability.requestmetrics import RouteTally, request_metrics
from monitoring.models import MetricPoint, Resolution, RollupWatermark
from monitoring.points import Agg
from monitoring.services.metrics import points_add
from monitoring.services.requests import request_metrics_flush

pytestmark = pytest.mark.django_db


@pytest.fixture
def metrics_on(settings):  # type: ignore[no-untyped-def]
    settings.MONITORING_REQUEST_METRICS = True
    settings.MONITORING_REQUEST_METRICS_FLUSH_SECONDS = 3600  # flushed by the test, not by the clock
    request_metrics.drain()
    yield
    request_metrics.drain()


def route_points() -> dict[str, tuple[int, dict | None]]:
    return {
        target: (count, breakdown)
        for target, count, breakdown in MetricPoint.objects.filter(series__kind="route").values_list(
            "series__target", "count", "breakdown"
        )
    }


def traffic(api, n: int) -> None:  # type: ignore[no-untyped-def]
    for _ in range(n):
        assert api.get("/api/v1/metrics/uptime/", {"target": "service:nosuch"}).status_code == 400
        assert api.get("/api/v1/events/").status_code == 403  # the key lacks events:read
        assert api.get("/api/v1/no/such/route/").status_code == 404
        assert api.generic("BREW", "/api/v1/maintenance/").status_code in (403, 405)


def test_requests_cost_no_query_and_are_counted_at_the_flush(client_for, metrics_on, settings) -> None:
    api = client_for("monitoring:read")
    traffic(api, 1)  # warm the key cache
    request_metrics.drain()
    settings.MONITORING_REQUEST_METRICS = False
    with CaptureQueriesContext(connection) as off:
        traffic(api, 5)
    settings.MONITORING_REQUEST_METRICS = True
    with CaptureQueriesContext(connection) as on:
        traffic(api, 5)

    # the metrics add no query to any request (the key's own bookkeeping — last use, re-checks — comes
    # and goes with the clock, so it is left out of the comparison)
    def own(captured: CaptureQueriesContext) -> list[str]:
        return [q["sql"] for q in captured.captured_queries if "access_apikey" not in q["sql"]]

    assert len(own(on)) == len(own(off))
    assert not [q for q in on.captured_queries if "monitoring_" in q["sql"]]
    assert request_metrics.flush() == 4
    points = route_points()
    assert points["GET /api/v1/metrics/uptime/"] == (5, {"4xx": 5.0})
    assert points["GET /api/v1/events/"] == (5, {"4xx": 5.0})
    assert points["GET <unmatched>"] == (5, {"4xx": 5.0})
    assert points["OTHER /api/v1/maintenance/"] == (5, {"4xx": 5.0})  # odd methods share one label


def test_flush_statements_do_not_grow_with_the_requests(client_for, metrics_on) -> None:
    api = client_for("monitoring:read")
    traffic(api, 1)
    request_metrics.flush()  # series exist from now on

    def flush_queries(n: int) -> int:
        traffic(api, n)
        with CaptureQueriesContext(connection) as captured:
            request_metrics.flush()
        return len(captured)

    assert flush_queries(2) == flush_queries(40) <= 7
    assert route_points()["GET /api/v1/events/"][0] == 1 + 2 + 40  # flushes add, never overwrite


@pytest.mark.django_db(transaction=True)
def test_the_process_thread_flushes_within_the_interval(client_for, metrics_on, settings) -> None:
    """No request flushes: the process's own thread does, off the request path."""
    api = client_for("monitoring:read")
    settings.MONITORING_REQUEST_METRICS_FLUSH_SECONDS = 3600
    with CaptureQueriesContext(connection) as captured:
        for _ in range(3):
            api.get("/api/v1/metrics/uptime/", {"target": "service:nosuch"})
    assert not [q for q in captured.captured_queries if "monitoring_" in q["sql"]]
    settings.MONITORING_REQUEST_METRICS_FLUSH_SECONDS = 0.2
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "GET /api/v1/metrics/uptime/" not in route_points():
        time.sleep(0.1)
    assert route_points()["GET /api/v1/metrics/uptime/"][0] == 3
    settings.MONITORING_REQUEST_METRICS_FLUSH_SECONDS = 3600


def test_a_late_tally_lands_in_the_first_minute_not_rolled_up() -> None:
    watermark = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    RollupWatermark.objects.create(name="minute", position=watermark)
    tally = RouteTally()
    tally.count, tally.sum_ms, tally.min_ms, tally.max_ms, tally.server_errors = 3, 30.0, 5.0, 15.0, 1
    old_minute = int((watermark - timedelta(minutes=30)).timestamp() // 60)
    request_metrics_flush({("GET", "/api/v1/services/", old_minute): tally})
    point = MetricPoint.objects.get(series__target="GET /api/v1/services/")
    assert (point.bucket, point.count, point.breakdown, point.min, point.max) == (watermark, 3, {"5xx": 1.0}, 5.0, 15.0)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_flushes_into_one_bucket_all_count() -> None:
    """Processes flush the same route and minute at once: the row lock makes each addition count."""
    bucket = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    key = (("route", "GET /x/", "requests"), bucket)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            for _ in range(10):
                points_add(resolution=Resolution.MINUTE, points={key: Agg(count=1, total=2.0)})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    point = MetricPoint.objects.get(series__target="GET /x/")
    assert (point.count, point.total) == (40, 80.0)
