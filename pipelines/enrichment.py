"""The config lookup behind `enrich` steps: effective config values, cached per process.

A value is read once per (namespace, key) and kept for `PIPELINE_ENRICH_CACHE_SECONDS`. The config store's
`config_changed` signal drops a namespace's values at once in the process that made the change; the other
processes (worker, other web workers) have no shared memory with it, so they follow when their copy
expires. Secret entries are never copied into packets: they read as absent.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from pipelines.conf import enrich_cache_seconds
from pipelines.paths import MISSING


class EnrichmentCache:
    """A small TTL cache of effective config values keyed by (namespace, key)."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, str], tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def lookup(self, namespace: str, key: str) -> Any:
        """The effective value (or MISSING), from the cache when fresh."""
        now = time.monotonic()
        hit = self._values.get((namespace, key))
        if hit is not None and hit[0] > now:
            return hit[1]
        value = _read(namespace, key)
        with self._lock:
            self._values[(namespace, key)] = (now + enrich_cache_seconds(), value)
        return value

    def invalidate(self, namespace: str | None = None) -> None:
        """Forget one namespace's values, or all of them."""
        with self._lock:
            if namespace is None:
                self._values.clear()
            else:
                for cached in [k for k in self._values if k[0] == namespace]:
                    self._values.pop(cached, None)


def _read(namespace: str, key: str) -> Any:
    from django.http import Http404

    from configstore.formats import nest
    from configstore.selectors import config_snapshot

    try:
        snapshot = config_snapshot(namespace)
    except Http404:
        return MISSING
    flat, secrets = snapshot.flat, snapshot.secret_keys
    if key in flat:
        return MISSING if key in secrets else flat[key]
    prefix = key + "."
    section = {k[len(prefix) :]: v for k, v in flat.items() if k.startswith(prefix) and k not in secrets}
    return nest(section) if section else MISSING


enrichment_cache = EnrichmentCache()


def on_config_changed(sender: Any = None, *, namespace: str = "", **kwargs: Any) -> None:
    """`config_changed` receiver: the namespace's cached values are stale."""
    enrichment_cache.invalidate(namespace or None)
