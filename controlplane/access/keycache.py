"""Per-process cache of API-key records, kept honest across processes by a shared generation counter.

Reading a key from PostgreSQL on every request costs more than the rest of a small request. With a
shared cache (Redis), each process keeps the key records it has loaded, each tagged with the shared
generation read *before* the record was loaded. Every key change increments the generation (at once
and again on commit). The per-request rate-limit round trip to Redis also reads the generation
(`controlplane.access.ratelimit`), and a record whose tag no longer matches is reloaded before the
request goes on — so a revocation made in any process binds every process on its very next request,
for one Redis round trip per request in the steady state.

Without a shared cache (the embedded default) there is nothing to coordinate on, so every request
reads the database.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

GENERATION_KEY = "access:apikey-generation"
_lock = threading.Lock()
_records: dict[str, tuple[Any, int]] = {}


def enabled() -> bool:
    return bool(settings.REDIS_URL) and getattr(settings, "APIKEY_CACHE", True)


def current_generation() -> int:
    """The shared generation, created on first use (a flushed Redis just means one reload).

    Raises `ServiceUnavailable` when the shared cache is down: without it revocations cannot be
    trusted, so authentication fails closed.
    """
    try:
        value = cache.get(GENERATION_KEY)
        if value is None:
            cache.add(GENERATION_KEY, 1, timeout=None)
            value = cache.get(GENERATION_KEY) or 1
    except Exception as exc:  # noqa: BLE001 - any cache failure: fail closed
        from controlplane.errors import ServiceUnavailable

        raise ServiceUnavailable("The shared cache is unavailable; request refused.") from exc
    return int(value)


def lookup(prefix: str, loader: Callable[[str], Any]) -> Any:
    """The record for `prefix`: this process's copy if it has one, else loaded (and kept) via `loader`."""
    if not enabled():
        return loader(prefix)
    with _lock:
        hit = _records.get(prefix)
    if hit is not None:
        return hit[0]
    generation = current_generation()  # read before loading: a change after this bumps past it
    record = loader(prefix)
    if record is not None:
        with _lock:
            _records[prefix] = (record, generation)
    return record


def confirm(prefix: str, generation: int) -> bool:
    """Whether the cached record for `prefix` is still current at `generation`.

    False means some key changed since it was loaded: every cached record is dropped and the caller
    must authenticate again from the database.
    """
    with _lock:
        hit = _records.get(prefix)
        if hit is None or hit[1] == generation:
            return True
        _records.clear()
        return False


def invalidate_on_commit() -> None:
    """Call from any service that changes a key, inside its transaction.

    Bumps the generation now (every process drops its copies on its next request) and again on commit,
    since another process may have re-read the old row in between.
    """
    _bump()
    transaction.on_commit(_bump)


def _bump() -> None:
    with _lock:
        _records.clear()
    if enabled():
        try:
            cache.incr(GENERATION_KEY)
        except ValueError:  # missing: the next reader creates it, which also forces a reload
            cache.add(GENERATION_KEY, 1, timeout=None)
