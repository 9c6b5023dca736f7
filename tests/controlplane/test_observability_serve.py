"""Through a real `manage.py serve`: probe metrics recorded by the worker appear on the web's /metrics, and
the default log has no access line for /healthz or static files (but one for everything else)."""

from __future__ import annotations

import re
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.management.sql import emit_post_migrate_signal

from registry.models import CheckResult
from tests.conftest import subprocess_env
from tests.processes import ServeProcess
from tests.registry.factories import CheckFactory, InstanceFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


class _Healthy(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server API
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
        pass


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
        return response.read()


def _sample(text: str, name: str, labels: str) -> float:
    """The value of `name{labels}` in an exposition text, 0 when absent."""
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} ([\d.e+]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_probe_metrics_from_the_worker_reach_metrics_and_quiet_paths_log_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")  # the default beat schedules
    target = ThreadingHTTPServer(("127.0.0.1", 0), _Healthy)
    target.daemon_threads = True
    threading.Thread(target=target.serve_forever, daemon=True).start()
    instance = InstanceFactory(address="127.0.0.1", port=target.server_address[1])
    check = CheckFactory(instance=instance, kind="http", path="/", interval=1, timeout=2)
    tcp_check = CheckFactory(instance=instance, name="tcp", kind="tcp", interval=1, timeout=2)
    # Default logging: what a newcomer's `make run` prints.
    env = subprocess_env()
    for name in ("LOG_LEVEL", "LOG_FORMAT"):
        env.pop(name, None)
    serve = ServeProcess(env, tmp_path)
    try:
        serve.wait_ready()
        serve.wait_output("controlplane is up")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if {check.pk, tcp_check.pk} <= set(CheckResult.objects.values_list("health_check_id", flat=True)):
                break
            time.sleep(0.5)
        assert CheckResult.objects.filter(health_check=check).exists(), serve.output[-3000:]
        # The result rows are written before the counters are flushed to their file: a moment's grace.
        text = ""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            text = _get(f"{serve.base}/metrics").decode()
            if _sample(text, "registry_probes_total", 'kind="tcp",result="passing"') > 0:
                break
            time.sleep(0.5)
        assert _sample(text, "registry_probes_total", 'kind="http",result="passing"') > 0, text[:3000]
        assert _sample(text, "registry_probes_total", 'kind="tcp",result="passing"') > 0, text[:3000]
        assert re.search(r"^registry_checks_claimed_total [1-9]", text, re.MULTILINE), text[:3000]
        duration = r'^registry_probe_duration_seconds_count\{kind="http"\} [1-9]'
        assert re.search(duration, text, re.MULTILINE), text[:3000]
        # The web's own samples are merged in too (multiprocess mode in the web process as well).
        assert re.search(r'controlplane_http_requests_total\{method="GET",route="/healthz",status="200"\}', text)

        for _ in range(3):
            _get(f"{serve.base}/healthz")
        _get(f"{serve.base}/static/admin/css/base.css")
        _get(f"{serve.base}/static/admin/js/core.js")
        _get(f"{serve.base}/readyz")  # a control: every other route keeps its access line
        serve.wait_output("GET /readyz 200")
    finally:
        code = serve.stop()
        target.shutdown()
        target.server_close()
    assert code == 0, serve.output[-3000:]
    access = [line for line in serve.output.splitlines() if "controlplane.access" in line]
    assert any("GET /metrics 200" in line for line in access), access
    assert not [line for line in access if "/healthz" in line or "/static/" in line], access
