"""Probes against real local servers: status mapping, bounds (time, bytes, redirects), egress guard."""

from __future__ import annotations

import os
import time

import pytest

from registry.health import parse_expected_statuses
from registry.probes import ProbeSpec
from registry.runner import run_probes_sync


def http_spec(target, path: str, **fields) -> ProbeSpec:  # type: ignore[no-untyped-def]
    fields.setdefault("timeout", 2.0)
    return ProbeSpec(check_id=1, kind="http", address=target.host, port=target.port, path=path, **fields)


def run_one(spec: ProbeSpec):  # type: ignore[no-untyped-def]
    return run_probes_sync([spec])[0]


def test_http_2xx_passes_with_latency_and_output(http_target):
    result = run_one(http_spec(http_target, "/ok", store_body=True))
    assert result.status == "passing"
    assert result.latency_ms is not None and 0 < result.latency_ms < 2000
    assert "200" in result.output and '{"status":"ok"}' in result.output


@pytest.mark.parametrize("path", ["/ok", "/status/500", "/status/429", "/slow?delay=0.2"])
def test_http_body_is_not_stored_unless_the_check_asks(http_target, path):
    """The output is readable with registry:read and a probe may reach internal services: no body by default."""
    stored = run_one(http_spec(http_target, path, store_body=True, warn_latency_ms=100))
    plain = run_one(http_spec(http_target, path, warn_latency_ms=100))
    assert plain.status == stored.status
    assert "\n" not in plain.output and plain.output.startswith("HTTP GET ")
    assert len(stored.output) > len(plain.output) and "\n" in stored.output


def test_http_body_contains_matches_without_storing_the_body(http_target):
    passing = run_one(http_spec(http_target, "/ok", body_contains='"ok"'))
    failing = run_one(http_spec(http_target, "/ok", body_contains="degraded"))
    assert passing.status == "passing" and failing.status == "critical"
    assert '{"status"' not in passing.output + failing.output


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("POST", {}),
        ("DELETE", {}),
        ("PUT", {}),
        ("GET", {"Host": "admin.internal"}),
        ("GET", {"host": "admin.internal"}),
        ("GET", {"Transfer-Encoding": "chunked"}),
        ("GET", {"Content-Length": "5"}),
        ("GET", {"Cookie": "session=x"}),
        ("GET", {"X-Forwarded-For": "127.0.0.1"}),
        ("GET", {"X-Ok": "a\r\nHost: evil"}),
    ],
)
def test_http_probe_refuses_methods_and_headers_outside_the_policy_without_sending(http_target, method, headers):
    """A row written behind the services' back is still not sent: the probe checks the policy itself."""
    http_target.state["hits"] = 0
    result = run_one(http_spec(http_target, "/toggle", method=method, headers=headers))
    assert result.status == "critical" and "probe policy" in result.output
    assert http_target.state["hits"] == 0


def test_http_probe_sends_allowed_methods_and_authorization(http_target):
    for method in ("GET", "HEAD"):
        before = http_target.state["hits"]
        spec = http_spec(http_target, "/toggle", method=method, headers={"Authorization": "Bearer t"})
        assert run_one(spec).status == "passing"
        assert http_target.state["hits"] == before + 1
    options = run_one(http_spec(http_target, "/toggle", method="OPTIONS"))
    assert "probe policy" not in options.output and "405" in options.output  # sent; the target has no OPTIONS


@pytest.mark.parametrize(
    ("code", "expected"), [(500, "critical"), (404, "critical"), (429, "warning"), (503, "critical")]
)
def test_http_status_mapping(http_target, code, expected):
    assert run_one(http_spec(http_target, f"/status/{code}")).status == expected


def test_http_expected_status_list(http_target):
    spec = http_spec(http_target, "/status/304", expected=parse_expected_statuses("200-299,304"))
    assert run_one(spec).status == "passing"
    spec = http_spec(http_target, "/status/204", expected=parse_expected_statuses("200,304"))
    assert run_one(spec).status == "critical"


def test_http_body_substring(http_target):
    assert run_one(http_spec(http_target, "/ok", body_contains='"ok"')).status == "passing"
    result = run_one(http_spec(http_target, "/ok", body_contains="degraded"))
    assert result.status == "critical" and "does not contain" in result.output


def test_http_latency_above_warn_threshold_is_warning(http_target):
    result = run_one(http_spec(http_target, "/slow?delay=0.3", warn_latency_ms=100))
    assert result.status == "warning" and "latency" in result.output
    assert run_one(http_spec(http_target, "/ok", warn_latency_ms=1000)).status == "passing"


def test_redirects_are_not_followed_by_default(http_target):
    result = run_one(http_spec(http_target, "/redirect/1"))
    assert result.status == "critical" and "302" in result.output


def test_redirects_followed_up_to_three_hops(http_target):
    assert run_one(http_spec(http_target, "/redirect/3", follow_redirects=True)).status == "passing"
    result = run_one(http_spec(http_target, "/redirect/4", follow_redirects=True))
    assert result.status == "critical" and "Too many redirects" in result.output


def test_redirect_to_denied_network_is_refused(http_target):
    spec = http_spec(http_target, "/redirect-to?url=http://169.254.169.254/latest/meta-data/", follow_redirects=True)
    result = run_one(spec)
    assert result.status == "critical" and "egress guard" in result.output


def test_dripping_target_ends_at_timeout(http_target):
    started = time.monotonic()
    result = run_one(http_spec(http_target, "/drip", timeout=1.0))
    assert time.monotonic() - started < 2.5
    assert result.status == "critical" and "Timed out after 1 s" in result.output


def test_silent_target_ends_at_timeout(http_target):
    started = time.monotonic()
    result = run_one(http_spec(http_target, "/hang", timeout=0.5))
    assert time.monotonic() - started < 2.0
    assert result.status == "critical" and "Timed out" in result.output


def test_huge_body_is_read_only_up_to_the_limit(http_target):
    result = run_probes_sync([http_spec(http_target, "/huge", body_contains="zzz")], max_body_bytes=64 * 1024)[0]
    assert result.status == "critical"
    assert "first 65536 bytes read" in result.output
    passing = run_probes_sync([http_spec(http_target, "/huge")], max_body_bytes=64 * 1024)[0]
    assert passing.status == "passing"
    assert len(passing.output.encode()) <= 64 * 1024 + 200


def test_many_probes_run_concurrently(http_target):
    specs = [http_spec(http_target, "/slow?delay=0.3") for _ in range(50)]
    started = time.monotonic()
    results = run_probes_sync(specs, concurrency=64)
    assert [r.status for r in results] == ["passing"] * 50
    assert time.monotonic() - started < 2.0  # 50 x 0.3 s sequentially would be 15 s


def test_literal_denied_ip_is_refused_without_connecting():
    result = run_one(ProbeSpec(check_id=1, kind="http", address="169.254.169.254", port=80, timeout=1))
    assert result.status == "critical" and "egress guard" in result.output
    result = run_one(ProbeSpec(check_id=1, kind="tcp", address="169.254.169.254", port=80, timeout=1))
    assert result.status == "critical" and "egress guard" in result.output


def test_tcp_probe_passes_on_listener_and_fails_on_closed_port(tcp_listener, closed_port):
    port = tcp_listener.getsockname()[1]
    assert run_one(ProbeSpec(check_id=1, kind="tcp", address="127.0.0.1", port=port, timeout=1)).status == "passing"
    result = run_one(ProbeSpec(check_id=1, kind="tcp", address="127.0.0.1", port=closed_port, timeout=1))
    assert result.status == "critical" and "refused" in result.output.lower()


def test_tcp_probe_params_override_target(tcp_listener):
    port = tcp_listener.getsockname()[1]
    spec = ProbeSpec(check_id=1, kind="tcp", address="127.0.0.1", port=1, timeout=1, params={"port": port})
    assert run_one(spec).status == "passing"


@pytest.mark.redis
def test_redis_probe_pings_a_real_redis(closed_port):
    from urllib.parse import urlsplit

    from tests.conftest import REDIS_URL

    parts = urlsplit(REDIS_URL)
    spec = ProbeSpec(
        check_id=1, kind="redis", address=parts.hostname or "127.0.0.1", port=parts.port or 6379, timeout=2
    )
    result = run_one(spec)
    assert result.status == "passing" and "PONG" in result.output
    down = ProbeSpec(check_id=1, kind="redis", address="127.0.0.1", port=closed_port, timeout=1)
    assert run_one(down).status == "critical"


@pytest.mark.postgres
def test_postgres_probe_selects_one_on_a_real_server():
    from urllib.parse import urlsplit

    from tests.conftest import POSTGRES_URL

    parts = urlsplit(POSTGRES_URL)
    params = {"user": parts.username or "postgres", "dbname": "postgres"}  # the maintenance database always exists
    if parts.password:
        params["password"] = parts.password
    spec = ProbeSpec(
        check_id=1,
        kind="postgres",
        address=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        timeout=3,
        params=params,
    )
    result = run_one(spec)
    assert result.status == "passing", result.output
    wrong = ProbeSpec(
        check_id=1,
        kind="postgres",
        address=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        timeout=3,
        params={**params, "dbname": f"no_such_db_{os.getpid()}"},
    )
    result = run_one(wrong)
    assert result.status == "critical" and "connect failed" in result.output
