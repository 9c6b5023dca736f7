"""Registry metrics appear on /metrics: probes by kind and result, latency, lag, checks by status."""

from __future__ import annotations

import re

import pytest

from tests.registry.test_scheduling import http_check, tick


def sample(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name)}{re.escape(labels)} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


@pytest.mark.django_db
def test_metrics_expose_probe_counts_latency_lag_and_status_gauge(client, http_target):
    before = client.get("/metrics").content.decode()
    http_check(http_target, path="/ok")
    http_check(http_target, path="/status/500")
    tick()
    text = client.get("/metrics").content.decode()
    assert (
        sample(text, "registry_probes_total", '{kind="http",result="passing"}')
        == sample(before, "registry_probes_total", '{kind="http",result="passing"}') + 1
    )
    assert sample(text, "registry_probes_total", '{kind="http",result="critical"}') >= 1
    assert sample(text, "registry_probe_duration_seconds_count", '{kind="http"}') >= 2
    assert sample(text, "registry_dispatch_lag_seconds_count") >= 2
    assert sample(text, "registry_checks", '{status="passing"}') == 1
    assert sample(text, "registry_checks", '{status="critical"}') == 1
