"""The per-thread counting connection goes back to the cache's pool when its thread ends.

Every thread that counts a request holds one Redis connection for speed (`ratelimit._Counter`). Before,
it was made with `pool.make_connection()` and never returned, so each short-lived thread (the ASGI
server's `sync_to_async` threads, threaded callers) took one more slot of the pool until it answered
"Too many connections" and every request got 503. Here the pool is made small so the leak shows at once.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import caches
from django.http import HttpRequest
from django.test import override_settings
from django_redis.pool import ConnectionFactory

from controlplane.access import keycache, ratelimit
from controlplane.errors import ServiceUnavailable

pytestmark = pytest.mark.redis
POOL_SIZE = 3


@contextmanager
def _fresh_pool(max_connections: int):  # type: ignore[no-untyped-def]
    """The shared cache rebuilt on a new pool of `max_connections` (django-redis keeps one pool per URL)."""
    url = settings.CACHES["default"]["LOCATION"]
    cache_settings = {
        "default": {
            **settings.CACHES["default"],
            "OPTIONS": {
                **settings.CACHES["default"].get("OPTIONS", {}),
                "CONNECTION_POOL_KWARGS": {"max_connections": max_connections},
            },
        }
    }
    previous = ConnectionFactory._pools.pop(url, None)  # noqa: SLF001 - so the new size takes effect
    with override_settings(CACHES=cache_settings):
        caches._settings = None  # noqa: SLF001 - rebuild handlers from the overridden setting
        try:
            pool = keycache.shared_pool()
            assert pool.max_connections == max_connections
            yield pool
        finally:
            caches._settings = None  # noqa: SLF001
            ConnectionFactory._pools.pop(url, None)  # noqa: SLF001
            if previous is not None:
                ConnectionFactory._pools[url] = previous  # noqa: SLF001
            pool.disconnect()


@pytest.fixture
def small_pool():  # type: ignore[no-untyped-def]
    """A pool of `POOL_SIZE` connections behind the shared cache."""
    if not settings.REDIS_URL or not keycache.enabled():
        pytest.skip("counts on Redis only in production mode (REDIS_URL)")
    with _fresh_pool(POOL_SIZE) as pool:
        yield pool
    checkout = ratelimit._counter.checkout  # noqa: SLF001 - the test thread's own, on a pool now gone
    if checkout is not None:
        checkout.close()
        ratelimit._counter.checkout = None  # noqa: SLF001


def _count_once(prefix: str) -> int:
    usage = ratelimit.ratelimit_hit(HttpRequest(), key_prefix=prefix, rate="100000/h")
    return usage.remaining


def _in_thread(target, *args):  # type: ignore[no-untyped-def]
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target(*args)
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    return errors


def _in_use(pool) -> int:  # type: ignore[no-untyped-def]
    return len(pool._in_use_connections)  # noqa: SLF001 - what the leak filled


def test_many_short_lived_threads_reuse_the_pool(small_pool) -> None:  # type: ignore[no-untyped-def]
    # Ten times the pool size, one after another: each thread's connection is back before the next.
    for n in range(10 * POOL_SIZE):
        assert _in_thread(_count_once, "thr-seq") == [], f"thread {n} failed"
        assert _in_use(small_pool) <= 1  # the test thread itself holds none
    assert _in_use(small_pool) == 0


def test_threads_in_waves_up_to_the_pool_size(small_pool) -> None:  # type: ignore[no-untyped-def]
    # Waves of POOL_SIZE live threads at once (a fresh executor per wave, as asgiref makes per loop).
    for _ in range(8):
        with ThreadPoolExecutor(max_workers=POOL_SIZE) as executor:
            list(executor.map(_count_once, ["thr-wave"] * (POOL_SIZE * 4)))
    assert _in_use(small_pool) == 0


def test_sync_to_async_threads_from_new_loops(small_pool) -> None:  # type: ignore[no-untyped-def]
    # Each asyncio.run gets a new default executor whose threads end with it (the ASGI server's path).
    async def burst() -> None:
        await asyncio.gather(
            *(sync_to_async(_count_once, thread_sensitive=False)("thr-loop") for _ in range(POOL_SIZE))
        )

    for _ in range(10):
        asyncio.run(burst())
    assert _in_use(small_pool) == 0


def test_the_pool_stays_bounded_and_fails_closed(small_pool) -> None:  # type: ignore[no-untyped-def]
    # POOL_SIZE threads alive at once hold every slot; one more is refused (503), not given a new socket.
    holding = threading.Barrier(POOL_SIZE + 1)
    release = threading.Event()

    def hold() -> None:
        _count_once("thr-bound")
        holding.wait(10)
        release.wait(10)

    threads = [threading.Thread(target=hold) for _ in range(POOL_SIZE)]
    for thread in threads:
        thread.start()
    try:
        holding.wait(10)
        errors = _in_thread(_count_once, "thr-bound")
        assert len(errors) == 1 and isinstance(errors[0], ServiceUnavailable)
    finally:
        release.set()
        for thread in threads:
            thread.join(10)
    # Once they end, counting works again from any new thread.
    assert _in_thread(_count_once, "thr-bound") == []
    assert _in_use(small_pool) == 0


def test_a_reconfigured_cache_gives_the_old_connection_back(small_pool) -> None:  # type: ignore[no-untyped-def]
    _count_once("thr-reconf")  # the test thread now holds one connection of small_pool
    assert _in_use(small_pool) == 1
    with _fresh_pool(POOL_SIZE + 1) as new_pool:  # a runtime reconfiguration: a new pool
        assert new_pool is not small_pool
        _count_once("thr-reconf")
        assert _in_use(small_pool) == 0
        assert _in_use(new_pool) == 1
        ratelimit._counter.checkout.close()  # noqa: SLF001 - leave no connection checked out for later tests
        assert _in_use(new_pool) == 0


def test_a_failed_reconnect_never_reuses_a_connection_given_back(small_pool) -> None:  # type: ignore[no-untyped-def]
    """The cache moves to a store that is down, then back: the thread must not keep the connection it gave
    back on the way out. Before, it did; the pool then handed that socket to the next caller too, and two
    users of one socket read each other's replies (off-by-one counts, spurious 503s in later tests)."""
    _count_once("thr-dead")
    held = ratelimit._counter.checkout.connection  # noqa: SLF001
    dead = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        }
    }
    with override_settings(CACHES=dead):
        caches._settings = None  # noqa: SLF001 - rebuild handlers from the overridden setting
        try:
            with pytest.raises(ServiceUnavailable):
                _count_once("thr-dead")
        finally:
            caches._settings = None  # noqa: SLF001
    assert keycache.shared_pool() is small_pool  # back on the pool the thread counted on before
    other = small_pool.get_connection()  # another user of the pool, given the connection released above
    try:
        _count_once("thr-dead")
        assert ratelimit._counter.checkout.connection is not other  # noqa: SLF001 - one user per socket
        assert held in (other, *small_pool._available_connections)  # noqa: SLF001 - it was given back
    finally:
        small_pool.release(other)
