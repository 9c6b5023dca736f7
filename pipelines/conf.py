"""The pipelines app's settings, each read with a default so the app works before the lead adds them."""

from __future__ import annotations

from django.conf import settings

from pipelines.budget import Budget


def max_packet_bytes() -> int:
    """Largest packet (its JSON text) accepted by run, batch and dry run."""
    return int(getattr(settings, "PIPELINE_MAX_PACKET_BYTES", 256 * 1024))


def max_batch_packets() -> int:
    """Most packets one batch call may carry."""
    return int(getattr(settings, "PIPELINE_MAX_BATCH", 1000))


def max_steps() -> int:
    """Most steps a pipeline may have."""
    return int(getattr(settings, "PIPELINE_MAX_STEPS", 100))


def max_chain_depth() -> int:
    """How many pipelines deep a chain of `{"pipeline": ...}` routes may go (cycles end here too)."""
    return int(getattr(settings, "PIPELINE_MAX_CHAIN_DEPTH", 4))


def json_max_depth() -> int:
    """Nesting limit for packets and for `json_parse` results."""
    return int(getattr(settings, "API_JSON_MAX_DEPTH", 64))


def stats_flush_seconds() -> float:
    """How often a process folds its in-memory step counters into the database (never per packet)."""
    return float(getattr(settings, "PIPELINE_STATS_FLUSH_SECONDS", 2.0))


def enrich_cache_seconds() -> float:
    """How long a process trusts its cached copy of a namespace's effective config.

    `config_changed` clears the copy at once in the process that made the change; other processes
    (worker, other web workers) follow within this many seconds.
    """
    return float(getattr(settings, "PIPELINE_ENRICH_CACHE_SECONDS", 2.0))


def run_failed_event_interval() -> int:
    """At most one `pipeline.run_failed` event per pipeline in this many seconds."""
    return int(getattr(settings, "PIPELINE_RUN_FAILED_EVENT_SECONDS", 60))


def delivery_max_attempts() -> int:
    """Attempts before a delivery to a service is given up and `pipeline.delivery_failed` is emitted."""
    return int(getattr(settings, "PIPELINE_DELIVERY_MAX_ATTEMPTS", 5))


def delivery_backoff_seconds() -> float:
    """Base of the exponential backoff between delivery attempts."""
    return float(getattr(settings, "PIPELINE_DELIVERY_BACKOFF_SECONDS", 1.0))


def delivery_timeout_seconds() -> float:
    """Time limit of one delivery HTTP request."""
    return float(getattr(settings, "PIPELINE_DELIVERY_TIMEOUT_SECONDS", 10.0))


def run_stalled_seconds() -> int:
    """An async run `running` for longer than this lost its worker: it is queued again (or failed)."""
    return int(getattr(settings, "PIPELINE_RUN_STALLED_SECONDS", 300))


def run_pending_requeue_seconds() -> int:
    """An async run still `pending` this long after its message was sent is queued again (once per period)."""
    return int(getattr(settings, "PIPELINE_RUN_PENDING_REQUEUE_SECONDS", 300))


def run_max_attempts() -> int:
    """Workers that may claim one async run before it is failed instead of retried."""
    return int(getattr(settings, "PIPELINE_RUN_MAX_ATTEMPTS", 3))


def run_retention_days() -> int:
    """Runs and settled deliveries older than this are pruned."""
    return int(getattr(settings, "PIPELINE_RUN_RETENTION_DAYS", 14))


def max_chained_runs() -> int:
    """Budget: pipeline runs one packet may cause through `{"pipeline": ...}` routes (its whole chain tree)."""
    return int(getattr(settings, "PIPELINE_MAX_CHAINED_RUNS", 32))


def max_recorded_failures() -> int:
    """Budget: failed runs one request (a sync run, a batch, an async run) may record."""
    return int(getattr(settings, "PIPELINE_MAX_RECORDED_FAILURES", 1000))


def run_max_seconds() -> float:
    """Budget: wall-clock seconds of one request's runs (a sync packet with its chains, a batch, an async run).

    Below gunicorn's worker timeout, so an expensive request fails cleanly instead of being killed.
    """
    return float(getattr(settings, "PIPELINE_RUN_MAX_SECONDS", 10))


def run_budget() -> Budget:
    """A started budget for one request, from the settings."""
    return Budget(
        max_packet_bytes=max_packet_bytes(),
        max_seconds=run_max_seconds(),
        max_chained_runs=max_chained_runs(),
        max_recorded_failures=max_recorded_failures(),
    ).start()
