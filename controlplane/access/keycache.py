"""Per-process cache of API-key records, kept honest across processes by a shared generation counter.

Reading a key from PostgreSQL on every request costs more than the rest of a small request. With a
shared cache (Redis), each process keeps the key records it has loaded, each tagged with the shared
generation read *before* the record was loaded. Every key change increments the generation (at once
and again on commit). The per-request rate-limit round trip to Redis also reads the generation
(`controlplane.access.ratelimit`), and a record whose tag no longer matches is reloaded before the
request goes on — so a revocation made in any process binds every process on its very next request,
for one Redis round trip per request in the steady state.

A serving process that runs the coherence listener (`controlplane.coherence`) knows the current
generation without asking, so the per-request round trip goes away too; records are then tagged with
that generation. This module registers the generation with it (`coherence.register_generation`), with
`drop_all` as what to do when the generation moves.

Without a shared cache (the embedded default) there is nothing to coordinate on, so every request
reads the database.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.signals import setting_changed
from django.db import transaction
from django.dispatch import receiver

from controlplane import coherence

GENERATION_KEY = "access:apikey-generation"
logger = logging.getLogger("controlplane.access")
_lock = threading.Lock()
_records: dict[str, Any] = {}


_enabled: bool | None = None  # memo: asked several times per request; reset when a setting changes


def enabled() -> bool:
    """Whether key records are cached and checked against the shared generation (needs Redis)."""
    global _enabled
    if _enabled is None:
        _enabled = bool(settings.REDIS_URL) and getattr(settings, "APIKEY_CACHE", True)
    return _enabled


_listening: bool | None = None  # memo, like `_enabled`


def listening() -> bool:
    """Whether this process follows the generation through the coherence listener (`COHERENCE_LISTENER`).

    Off, every request reads the generation in its one Redis round trip: the simpler design, kept
    switchable so the benchmark can compare the two (docs/BENCHMARKS.md).
    """
    global _listening
    if _listening is None:
        _listening = enabled() and getattr(settings, "COHERENCE_LISTENER", True)
    return _listening


@receiver(setting_changed)
def _forget_enabled(setting: str, **kwargs: Any) -> None:
    global _enabled, _listening
    if setting in ("REDIS_URL", "APIKEY_CACHE", "CACHES", "COHERENCE_LISTENER"):
        _enabled = None
        _listening = None


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


def shared_pool() -> Any:
    """The shared cache's Redis connection pool (django-redis); its identity changes when the cache is rebuilt."""
    return cache.client.get_client(write=True).connection_pool


def trusted(keys: Sequence[str] = ()) -> tuple[int | None, dict[str, bytes | None] | None]:
    """What this process knows without a round trip (see `coherence`): the generation, and the values of
    the shared-cache `keys` when asked for. `(None, None)` when it must ask Redis for any of it."""
    if not listening():
        return None, None
    pool = shared_pool()
    generation = coherence.trusted_generation(pool, GENERATION_KEY)
    if generation is None or not keys:
        return generation, None
    known = coherence.trusted_values(pool, keys)
    return (generation, known) if known is not None else (None, None)


def trusted_generation() -> int | None:
    """The generation this process knows without a round trip, else None."""
    return trusted()[0]


def lookup(prefix: str, loader: Callable[[str], Any]) -> Any:
    """The record for `prefix`: this process's copy if it has one, else loaded (and kept) via `loader`.

    A loaded record carries `cached_generation`, the generation read *before* loading it, which
    `confirm` compares with the current one.
    """
    if not enabled():
        return loader(prefix)
    with _lock:
        hit = _records.get(prefix)
    if hit is not None:
        return hit
    generation = trusted_generation()
    if generation is None:
        generation = current_generation()  # read before loading: a change after this bumps past it
    record = loader(prefix)
    if record is not None:
        record.cached_generation = generation
        with _lock:
            _records[prefix] = record
    return record


def confirm(record: Any, generation: int | None) -> bool:
    """Whether `record` (as returned by `lookup`) is still current at `generation`.

    False means some key changed since it was loaded: every cached record is dropped and the caller
    must authenticate again from the database.
    """
    if getattr(record, "cached_generation", None) == generation:
        return True
    drop_all()
    return False


def drop_all() -> None:
    """Forget every cached record (the generation moved)."""
    with _lock:
        _records.clear()


coherence.register_generation(GENERATION_KEY, drop_all)


def invalidate_on_commit() -> None:
    """Called by the data layer (`querysets`, `signals`) for every write to a key row.

    Bumps the generation now (every process drops its copies on its next request) and again on commit,
    since another process may have re-read the old row in between. The commit-time bump waits at the
    coherence barrier, so when the change's caller returns no process can still use an old copy. It is
    registered once per transaction, however many rows the transaction changes.
    """
    _bump()
    connection = transaction.get_connection()
    if connection.in_atomic_block and any(func is _bump_and_wait for _, func, _ in connection.run_on_commit):
        return
    transaction.on_commit(_bump_and_wait)


def _bump_and_wait() -> None:
    _bump(wait=True)


def _bump(wait: bool = False) -> None:
    drop_all()
    if enabled():
        try:
            cache.incr(GENERATION_KEY)
        except ValueError:  # missing: the next reader creates it, which also forces a reload
            cache.add(GENERATION_KEY, 1, timeout=None)
        if wait:
            import time

            try:
                coherence.barrier()
            except Exception:  # noqa: BLE001 - committed already: wait out every process's trust instead
                logger.warning("Coherence barrier failed after a key change; waiting out trust", exc_info=True)
                time.sleep(coherence.SAFE_AFTER_SECONDS)
