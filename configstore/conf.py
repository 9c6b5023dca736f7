"""The config store's settings, each read with a default so the app works before the lead adds them."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings


def source_root() -> Path:
    """Directory that file sources must live under (`CONFIG_SOURCE_ROOT`)."""
    return Path(getattr(settings, "CONFIG_SOURCE_ROOT", Path(settings.VAR_DIR) / "config-sources"))


def source_max_bytes() -> int:
    """Largest file source (or import body) accepted, in bytes."""
    return int(getattr(settings, "CONFIG_SOURCE_MAX_BYTES", 2 * 1024 * 1024))


def import_max_bytes() -> int:
    """Largest import body accepted, in bytes (also bounded by DATA_UPLOAD_MAX_MEMORY_SIZE)."""
    return int(getattr(settings, "CONFIG_IMPORT_MAX_BYTES", 5 * 1024 * 1024))


def max_entries() -> int:
    """Most entries one namespace layer may hold; bounds imports and sources."""
    return int(getattr(settings, "CONFIG_MAX_ENTRIES", 50_000))


def watch_max_seconds() -> float:
    """Longest a watch request may block (issue: five minutes)."""
    return float(getattr(settings, "CONFIG_WATCH_MAX_SECONDS", 300))


def watch_poll_seconds() -> float:
    """How often the per-process poller reads namespace revisions while someone is watching.

    In embedded mode this is how changes made by the worker reach the web process; in production it is
    only a safety net behind Redis pub/sub.
    """
    default = 5.0 if redis_url() else 0.5
    return float(getattr(settings, "CONFIG_WATCH_POLL_SECONDS", default))


def redis_url() -> str | None:
    """Redis used for watch notifications (pub/sub); None in embedded mode."""
    return getattr(settings, "CONFIG_WATCH_REDIS_URL", None) or getattr(settings, "REDIS_URL", None)


def encryption_key() -> str:
    """Fernet key for secret entries (`CONFIG_ENCRYPTION_KEY`)."""
    return settings.CONFIG_ENCRYPTION_KEY


def reload_every_seconds() -> int:
    """Default interval of the source reload beat task (editable in the admin afterwards)."""
    return int(getattr(settings, "CONFIG_RELOAD_EVERY_SECONDS", 5))


def watch_db_threads() -> int:
    """Threads (and so database connections) a watch-server process uses for its short reads."""
    return int(getattr(settings, "CONFIG_WATCH_DB_THREADS", 4))


def revision_cache_seconds() -> int:
    """Lifetime of a namespace revision in Redis (0 disables the cache and reads the database)."""
    return int(getattr(settings, "CONFIG_REVISION_CACHE_SECONDS", 5))


def env_prefixes() -> list[str]:
    """Prefixes env sources may use (`CONFIG_ENV_PREFIXES`); empty, the default, turns env sources off."""
    return list(getattr(settings, "CONFIG_ENV_PREFIXES", []))
