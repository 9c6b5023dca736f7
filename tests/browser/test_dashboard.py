"""The dashboard and the status page in a real Chromium, through a real `manage.py serve` (uvicorn, worker, beat).

An operator signs in, opens the dashboard, a demo target stops answering and its service turns critical on
the open page without a reload within 3 s of the stored transition; they create a silence; a visitor who is
not signed in opens the status page and finds no private data. Screenshots go to $SCREENSHOT_DIR (default:
the test's tmp directory).
"""

from __future__ import annotations

import os
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.db import connection

from controlplane.events.models import Event
from monitoring.models import Silence, StatusPageService
from registry.models import Check
from registry.services import instance_register, service_create
from tests.conftest import subprocess_env
from tests.processes import ServeProcess, free_port

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]
PRIVATE = ("10.9.8.7", "secret-vault", "Secret Vault", "vault-check", "vault-node-1")


class Target:
    """A demo HTTP target answering 200 on /healthz until stopped."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
                return

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_operator_watches_a_service_turn_critical_live_silences_it_and_the_status_page_leaks_nothing(
    browser_page, django_user_model, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    shots = _shots(tmp_path)
    target = Target()
    shop = service_create(name="demo-shop", display_name="Demo shop", type="http_api")
    instance_register(
        service=shop,
        instance_id="shop-1",
        address="127.0.0.1",
        port=target.port,
        checks=[{"name": "healthz", "kind": "http", "path": "/healthz", "interval": 1, "timeout": 1}],
    )
    StatusPageService.objects.create(service=shop, public=True, display_name="Shop")
    vault = service_create(name="secret-vault", display_name="Secret Vault", type="database")
    instance_register(
        service=vault,
        instance_id="vault-node-1",
        address="10.9.8.7",
        port=5432,
        checks=[{"name": "vault-check", "kind": "ttl", "ttl": 600}],
    )
    django_user_model.objects.create_superuser("operator", "", "a-long-test-password")
    serve = ServeProcess(subprocess_env(), tmp_path)
    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(f"console {message.type}: {message.text}"))
    try:
        serve.wait_ready()
        base = serve.base
        # Static files of the dashboard are served by serve itself (WhiteNoise), with their types.
        for path, kind in (
            ("/static/monitoring/live.js", "javascript"),
            ("/static/monitoring/dashboard.css", "text/css"),
        ):
            with urllib.request.urlopen(base + path, timeout=10) as response:  # noqa: S310 - loopback
                assert response.status == 200 and kind in response.headers["Content-Type"], path

        page.goto(f"{base}/")  # signs in through the admin, then lands on the dashboard
        page.fill("#id_username", "operator")
        page.fill("#id_password", "a-long-test-password")
        page.click("input[type=submit]")
        page.wait_for_selector("#live-indicator")
        assert page.url.rstrip("/").endswith("/dashboard")
        # Embedded: uvicorn serves the page and its event stream. Production: gunicorn serves the page and
        # answers the stream 204, so the page takes the polling fallback (route /dashboard/live/ to uvicorn).
        expected = "polling" if connection.vendor == "postgresql" else "live"
        page.wait_for_selector(f"#live-indicator[data-state={expected}]", timeout=15000)
        row = f'tr[data-service-id="{shop.pk}"]'
        deadline = time.monotonic() + 30
        while Check.objects.get(instance__service=shop).status != "passing":
            assert time.monotonic() < deadline, serve.output[-3000:]
            time.sleep(0.3)
        page.wait_for_selector(f'{row} [data-status="passing"]', timeout=15000)
        page.screenshot(path=str(shots / "dashboard-passing.png"), full_page=True)

        # Record, in the page, when the critical badge appears: no reload may happen (the marker survives).
        page.evaluate(
            """(row) => { window.__marker = 'still-here'; window.__criticalAt = null;
                new MutationObserver(() => { if (!window.__criticalAt && document.querySelector(row + ' [data-status="critical"]'))
                  window.__criticalAt = Date.now(); }).observe(document.body, {subtree: true, childList: true}); }""",
            row,
        )
        target.stop()
        try:
            page.wait_for_selector(f'{row} [data-status="critical"]', timeout=20000)
        except Exception as exc:
            check = Check.objects.get(instance__service=shop)
            state = page.inner_text("#live-indicator") + " " + page.evaluate(
                "fetch('/dashboard/live/state/?since=1').then(r => r.text()).then(t => t.substring(0, 300))"
            )
            last = page.get_attribute("#live-indicator", "data-last-event")
            state += f" LAST {last} " + page.evaluate(f"fetch('/dashboard/live/state/?since={last}').then(r => r.text()).then(t => t.substring(0, 300))")
            state += page.inner_html(row) + " ERRORS " + " | ".join(errors)
            raise AssertionError(f"{exc}; check {check.status}, indicator {state!r}; {serve.output[-2500:]}") from exc
        shown_at = page.evaluate("window.__criticalAt") / 1000
        assert page.evaluate("window.__marker") == "still-here"  # patched in place, not reloaded
        stored = (
            Event.objects.filter(kind="instance.status_changed", subject="demo-shop/shop-1", data__new="critical")
            .latest("id")
            .created_at.timestamp()
        )
        assert shown_at - stored <= 3.0, f"shown {shown_at - stored:.2f} s after the transition was stored"
        assert "critical" in page.inner_text(f"{row} .svc-status")
        page.screenshot(path=str(shots / "dashboard-critical.png"), full_page=True)

        page.click(f"{row} a")
        page.wait_for_selector("svg.uptime-bar")
        assert page.locator("svg.uptime-bar g.day").count() == 90
        page.screenshot(path=str(shots / "service-page.png"), full_page=True)

        page.goto(f"{base}/dashboard/alerts/")
        page.fill("#id_silence-matchers", "service=demo-shop")
        page.fill("#id_silence-duration_minutes", "60")
        page.fill("#id_silence-comment", "known outage, target stopped on purpose")
        page.click("#silence-form button[type=submit]")
        page.wait_for_selector(".messages")
        assert "Silence created." in page.inner_text(".messages")
        silence = Silence.objects.get()
        assert silence.author and "operator" in silence.author and silence.matchers[0]["value"] == "demo-shop"
        assert "known outage" in page.inner_text("#silences")
        page.screenshot(path=str(shots / "alerts-silence.png"), full_page=True)

        # A visitor: a fresh context, no session.
        visitor = page.context.browser.new_context()
        public = visitor.new_page()
        public.goto(f"{base}/status/")
        html = public.content()
        assert "Shop" in html and ("uptime, 90 days" in html or "no data yet" in html)
        for secret in (*PRIVATE, str(target.port), "shop-1", "healthz", "127.0.0.1"):
            assert secret not in html, secret
        public.screenshot(path=str(shots / "status-page.png"), full_page=True)
        badge = public.request.get(f"{base}/status/badge/demo-shop.svg")
        assert badge.status == 200 and "Shop" in badge.text() and "127.0.0.1" not in badge.text()
        assert public.request.get(f"{base}/status/badge/secret-vault.svg").status == 404
        assert public.request.get(f"{base}/dashboard/", max_redirects=0).status == 302
        visitor.close()
    finally:
        target_stopped = target.server.socket.fileno() == -1
        if not target_stopped:
            target.stop()
        assert serve.stop() == 0, serve.output[-3000:]
