"""The registry's settings, each read with a default so the app works before the project sets them."""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Checks claimed per dispatcher tick, and checks per batch task.
    "REGISTRY_DISPATCH_MAX_PER_TICK": 5000,
    "REGISTRY_BATCH_SIZE": 500,
    # Probes in flight at once inside one batch task.
    "REGISTRY_BATCH_CONCURRENCY": 128,
    # Checks due within this many seconds are claimed now and probed at their due time, so a 1 s beat
    # tick does not add up to a second of lag.
    "REGISTRY_DISPATCH_LOOKAHEAD_SECONDS": 1.0,
    # Checks in one batch are due within this many seconds of each other (the batch starts at the first).
    "REGISTRY_BATCH_WINDOW_SECONDS": 0.25,
    # A claim not settled within this many seconds (worker killed, queue lost) is taken again.
    "REGISTRY_CLAIM_LEASE_SECONDS": 90,
    # Probe bounds.
    "REGISTRY_PROBE_MAX_BODY_BYTES": 64 * 1024,
    "REGISTRY_PROBE_MAX_TIMEOUT_SECONDS": 60,
    "REGISTRY_PROBE_MAX_REDIRECTS": 3,
    "REGISTRY_OUTPUT_MAX_BYTES": 4096,
    # Result retention (beat): by age and by count per check. Raw results are the monitoring roll-ups'
    # source; past a day they live on as minute/hour/day points (issue #11's default: raw 24 h).
    "REGISTRY_RESULT_RETENTION_DAYS": 1,
    "REGISTRY_RESULT_RETENTION_PER_CHECK": 1000,
}


def get(name: str) -> Any:
    """The setting `name`, or the registry's default for it."""
    return getattr(settings, name, DEFAULTS[name])
