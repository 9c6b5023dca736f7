"""Through a real `manage.py serve`: static files are served (admin CSS/JS, Swagger UI), and health checks
keep being recorded while every delivery worker is stuck on a target that drips one byte a second."""

from __future__ import annotations

import re
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.management.sql import emit_post_migrate_signal
from django.utils import timezone

from controlplane.events.models import Event, WebhookDelivery
from registry.models import CheckResult
from tests.conftest import subprocess_env
from tests.factories import WebhookSubscriptionFactory
from tests.processes import ServeProcess
from tests.registry.factories import CheckFactory, InstanceFactory

pytestmark = [pytest.mark.smoke, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _fetch(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read()


def test_serve_serves_the_admin_and_api_docs_static_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # pytest's live_server serves static files itself; only serve's own processes prove they are served.
    serve = ServeProcess(subprocess_env(), tmp_path, "--no-worker", "--no-beat")
    try:
        serve.wait_ready()
        status, _, page = _fetch(f"{serve.base}/admin/login/")
        assert status == 200
        html = page.decode()
        styles = re.findall(r'<link[^>]+href="([^"]+\.css)"', html)
        scripts = re.findall(r'<script[^>]+src="([^"]+\.js)"', html)
        assert any(s.endswith("admin/css/base.css") for s in styles) and scripts, html[:2000]
        for url in styles:
            status, content_type, body = _fetch(serve.base + url)
            assert status == 200 and content_type.startswith("text/css") and body, (url, status, content_type)
        for url in scripts:
            status, content_type, body = _fetch(serve.base + url)
            assert status == 200 and "javascript" in content_type and body, (url, status, content_type)

        status, _, page = _fetch(f"{serve.base}/api/docs/")
        assert status == 200
        bundles = re.findall(r'src="([^"]+\.js)"', page.decode())
        assert any(url.endswith("swagger-ui-bundle.js") for url in bundles), page[:2000]
        for url in bundles:
            status, content_type, body = _fetch(serve.base + url)
            assert status == 200 and "javascript" in content_type, (url, status, content_type)
            if url.endswith("swagger-ui-bundle.js"):
                assert b"SwaggerUIBundle" in body
        css = re.findall(r'href="([^"]+swagger-ui\.css)"', page.decode())
        assert css and _fetch(serve.base + css[0])[0] == 200
        # An unknown static path is a 404, not a directory listing or a stack trace.
        assert _fetch(f"{serve.base}/static/admin/css/nope.css")[0] == 404
    finally:
        assert serve.stop() == 0, serve.output[-3000:]


class Dripper:
    """An HTTP server that answers a POST with headers, then one body byte per second, for `hold` seconds."""

    def __init__(self, hold: float = 120.0) -> None:
        self.active = 0
        self.total = 0
        self._stop = threading.Event()
        dripper = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                started = time.monotonic()
                dripper.active += 1
                dripper.total += 1
                try:
                    self.rfile.read(int(self.headers.get("Content-Length") or 0))
                    self.send_response(200)
                    self.send_header("Content-Length", "100000")
                    self.end_headers()
                    while time.monotonic() - started < hold and not dripper._stop.is_set():
                        self.wfile.write(b"x")
                        self.wfile.flush()
                        time.sleep(1)
                except OSError:
                    pass  # the client gave up (time limit): what the test wants to see
                finally:
                    dripper.active -= 1

            def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def __enter__(self) -> Dripper:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()


class Healthy(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server API
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
        pass


def test_checks_keep_running_while_every_delivery_worker_is_stuck(tmp_path) -> None:  # type: ignore[no-untyped-def]
    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")  # the default beat schedules
    healthy = ThreadingHTTPServer(("127.0.0.1", 0), Healthy)
    healthy.daemon_threads = True
    threading.Thread(target=healthy.serve_forever, daemon=True).start()
    instance = InstanceFactory(address="127.0.0.1", port=healthy.server_address[1])
    checks = [CheckFactory(instance=instance, kind="http", path="/", interval=1, timeout=2) for _ in range(2)]
    env = subprocess_env(
        EGRESS_ALLOW_PRIVATE="true",  # the dripping target is on loopback
        # The delivery engine's total deadline at its longest (60 s), so that here the deliveries' time limits
        # end a stuck task first: both the worker slot and the limits are under test, not the deadline.
        WEBHOOK_TIMEOUT_SECONDS="60",
        TASK_SOFT_TIME_LIMIT_DELIVERIES="12",
        TASK_TIME_LIMIT_DELIVERIES="15",
    )
    with Dripper() as dripper:
        subscription = WebhookSubscriptionFactory(url=dripper.url, kinds=["drip.*"])
        for n in range(4):  # more than the delivery worker's slots (--worker-concurrency 1)
            event = Event.objects.create(kind="drip.tick", actor="test", subject=f"s{n}")
            WebhookDelivery.objects.create(subscription=subscription, event=event, next_attempt_at=timezone.now())
        serve = ServeProcess(env, tmp_path)
        try:
            serve.wait_ready()
            deadline = time.monotonic() + 60
            while dripper.active == 0 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert dripper.active, f"no delivery reached the dripping target: {serve.output[-3000:]}"
            stuck_since = time.monotonic()
            before = CheckResult.objects.filter(health_check__in=checks).count()
            time.sleep(8)
            assert dripper.active, "the delivery stopped blocking: the test proves nothing"
            after = CheckResult.objects.filter(health_check__in=checks).count()
            # Two 1 s checks for 8 s: about 16 results; well above zero whatever the machine's load.
            assert after - before >= 6, (before, after, serve.output[-3000:])

            # The time limits end a delivery that never finishes (soft 12 s, hard 15 s) and free the slot:
            # the worker takes the next delivery.
            deadline = stuck_since + 30
            while dripper.total < 2 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert dripper.total >= 2, serve.output[-3000:]
            assert re.search(r"(Soft|Hard) time limit \(1[25]s\) exceeded for controlplane\.delivery\.deliver", serve.output)
        finally:
            code = serve.stop()
            healthy.shutdown()
            healthy.server_close()
    assert code == 0, serve.output[-3000:]
