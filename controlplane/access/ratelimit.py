"""Per-key rate limiting on the shared cache, failing closed.

Counting follows django-ratelimit exactly (its fixed windows with a per-key offset, its cache keys),
through its `get_usage` on the embedded local-memory cache. On Redis the same counter is taken in one
round trip (a small Lua script) that also reads the API-key generation (see `keycache`): SET NX EX + INCR are
atomic, so the count is exact across every gunicorn worker and host. When the store cannot
be reached the request is refused with 503, never let through unlimited.

A process that trusts its API-key generation without asking (`coherence`) need not ask Redis per
request at all: it takes a *lease* of several consecutive counts in one INCRBY and hands them out
locally. Counts are still taken from the one shared counter, so no more than the limit is ever
admitted in a window; a lease is at most 1/`LEASE_SHARE` of what the window has left (so a key near
its limit, or with a small limit, is counted one request at a time, exactly as before) and at most
`LEASE_MAX`. The price: counts leased by a process that then gets no more traffic for that key are not
used in that window. Once a lease shows the window is spent, the process answers 429 until the window
ends without asking again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from django.core.cache import cache
from django.http import HttpRequest
from django_ratelimit.core import EXPIRATION_FUDGE, _get_window, _make_cache_key, _split_rate, get_usage
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from controlplane.access import keycache
from controlplane.errors import ServiceUnavailable

GROUP = "api"


@dataclass(frozen=True)
class RateLimitUsage:
    """What the `RateLimit-*` headers report for one request."""

    limit: int
    remaining: int
    reset: int
    limited: bool
    generation: int | None = None
    # Values of the cache keys the view asked to read in the same round trip (see `ratelimit_hit`).
    prefetched: dict[str, bytes | None] = field(default_factory=dict)


LEASE_MAX = 64
LEASE_SHARE = 256


def ratelimit_hit(
    request: HttpRequest,
    *,
    key_prefix: str,
    rate: str,
    also_get: Sequence[str] = (),
    leased: bool = False,
    known: dict[str, bytes | None] | None = None,
) -> RateLimitUsage:
    """Count one request for `key_prefix` against `rate` and say whether it is over the limit.

    `also_get`: full cache keys (already `cache.make_key`-ed) to read in the same Redis round trip; a
    read-heavy view learns what it needs first (the config store: a namespace's revision) without a
    second trip. Their values are in `usage.prefetched`; without Redis nothing is prefetched.
    `leased`: the caller does not need the generation from Redis (it trusts its own), so the count may
    come from this thread's lease; `usage.generation` is then None. `known`: the `also_get` values the
    caller already knows the same way (see `coherence.trusted_values`); with them no trip is needed.
    """
    if keycache.enabled():
        if leased and (known is not None or not also_get):
            usage = _leased_hit(key_prefix, rate)
            return replace(usage, prefetched=known) if known else usage
        return _redis_hit(key_prefix, rate, also_get)
    try:
        usage = get_usage(request, group=GROUP, key=lambda _group, _request: key_prefix, rate=rate, increment=True)
    except Exception as exc:  # noqa: BLE001 - store down: fail closed
        raise ServiceUnavailable("The rate-limit store is unavailable; request refused.") from exc
    if usage is None:
        raise ServiceUnavailable("Rate limiting is misconfigured; request refused.")
    limit, _period = _split_rate(rate)
    return RateLimitUsage(
        limit=limit,
        remaining=max(limit - usage["count"], 0),
        reset=max(int(usage["time_left"]), 0),
        limited=usage["should_limit"],
    )


# One round trip: read the key generation, start the window's counter if new, count this request (or
# take a lease: up to ARGV[2] counts, at most 1/ARGV[4] of what the window has left below the limit
# ARGV[3], sized here from the shared counter itself), and read any keys the view asked for (GET gives
# false for a missing key, so the list has no holes). Reply: generation, count, lease size, values.
_COUNT_LUA = """
local generation = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[2], 0, 'EX', ARGV[1], 'NX')
local size = 1
local most = tonumber(ARGV[2])
if most > 1 then
  local left = tonumber(ARGV[3]) - tonumber(redis.call('GET', KEYS[2]))
  size = math.max(1, math.min(most, math.floor(left / tonumber(ARGV[4]))))
end
local reply = {generation, redis.call('INCRBY', KEYS[2], size), size}
for i = 3, #KEYS do reply[#reply + 1] = redis.call('GET', KEYS[i]) end
return reply
"""
_COUNT_SHA = hashlib.sha1(_COUNT_LUA.encode()).hexdigest().encode()  # noqa: S324 - Redis names scripts by SHA-1


class _Counter(threading.local):
    """This thread's own Redis connection for the per-request count.

    Every API request makes this one call, so it skips the client's command layer (retry wrappers,
    per-command pool check-out, generic packing): a connection checked out of the cache's pool once per
    thread (same host, db, password, TLS and timeouts, and the pool's `max_connections` bound), a command
    packed by hand, one reply read. That is ~40 us instead of ~130 us a request. The connection goes back
    to the pool when the thread ends (`_Checkout`), so a process that runs many short-lived threads (the
    ASGI server's `sync_to_async` threads, threaded callers) reuses a few connections instead of taking
    one more from the pool per thread until Redis answers "Too many connections". A forked child builds
    its own connection (the pid check).
    """

    checkout: _Checkout | None = None
    keys: tuple[tuple[str, str, int], bytes, bytes] | None = None
    leases: dict[tuple[str, str], _Lease] | None = None
    leases_pid: int = 0


class _Checkout:
    """One connection checked out of `pool` for one thread; given back when the thread's locals go.

    Only the thread-local holds this object, so CPython drops it (and the finalizer returns the
    connection) when the thread ends; also when the pool changes or after a fork.
    """

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.pid = os.getpid()
        self.connection = pool.get_connection()
        # Not a bound method of self (that would keep self alive): the pool and the connection only.
        self._finalizer = weakref.finalize(self, _give_back, pool, self.connection, self.pid)

    def close(self) -> None:
        self._finalizer()


def _give_back(pool: Any, connection: Any, pid: int) -> None:
    if os.getpid() != pid:
        return  # a forked child's copy: the parent's pool and socket are not this process's to touch
    # Interpreter shutdown or a pool already torn down: there is nothing to return the connection to.
    with contextlib.suppress(Exception):
        pool.release(connection)


@dataclass
class _Lease:
    """Counts `next`..`last` of `window`, taken from the shared counter for this thread to hand out."""

    window: int
    next: int
    last: int


_counter = _Counter()


def _connection():  # type: ignore[no-untyped-def]
    # Tied to the cache's current pool, so a cache reconfigured at runtime (tests do) is followed.
    pool = keycache.shared_pool()
    checkout = _counter.checkout
    if checkout is None or checkout.pool is not pool or checkout.pid != os.getpid():
        if checkout is not None:
            # Forget it before opening the next one: if that fails (the store is down), a later call
            # must not go on using a connection that is back in its pool and may be handed to another
            # user of the same socket (their replies would interleave: wrong counts, spurious 503s).
            _counter.checkout = None
            checkout.close()
        checkout = _counter.checkout = _Checkout(pool)
    return checkout.connection


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


def _count(
    generation_key: bytes, counter_key: bytes, expiry: int, extra: Sequence[bytes] = (), lease: tuple[int, int] = (1, 0)
) -> tuple[bytes | None, int, int, list[bytes | None]]:
    """Run the count script on this thread's connection; loads the script once if Redis lost it."""
    connection = _connection()
    command = b"*%d\r\n$7\r\nEVALSHA\r\n" % (9 + len(extra)) + _bulk(_COUNT_SHA) + _bulk(b"%d" % (2 + len(extra)))
    command += _bulk(generation_key) + _bulk(counter_key) + b"".join(_bulk(key) for key in extra)
    most, limit = lease
    command += _bulk(b"%d" % expiry) + _bulk(b"%d" % most) + _bulk(b"%d" % limit) + _bulk(b"%d" % LEASE_SHARE)
    for attempt in (1, 2):
        try:
            connection.send_packed_command([command], check_health=False)
            reply = connection.read_response()
            return reply[0], int(reply[1]), int(reply[2]), list(reply[3:])
        except NoScriptError:
            connection.send_command("SCRIPT", "LOAD", _COUNT_LUA)
            connection.read_response()
        except (RedisConnectionError, RedisTimeoutError, OSError):
            connection.disconnect()  # a stale socket (Redis restarted): one fresh try, then fail closed
            if attempt == 2:
                raise
    raise RedisConnectionError("the rate-limit script could not be run")


def _counter_keys(key_prefix: str, rate: str, window: int) -> tuple[bytes, bytes]:
    """The generation and counter cache keys, memoized for the current window of the last key seen."""
    memo = _counter.keys
    if memo is not None and memo[0] == (key_prefix, rate, window):
        return memo[1], memo[2]
    counter = cache.make_key(_make_cache_key(GROUP, window, rate, key_prefix, "ALL")).encode()
    generation = cache.make_key(keycache.GENERATION_KEY).encode()
    _counter.keys = ((key_prefix, rate, window), generation, counter)
    return generation, counter


def _redis_hit(key_prefix: str, rate: str, also_get: Sequence[str] = ()) -> RateLimitUsage:
    limit, period = _split_rate(rate)
    window = _get_window(key_prefix, period)
    generation_key, counter_key = _counter_keys(key_prefix, rate, window)
    try:
        generation, count, _, values = _count(
            generation_key, counter_key, period + EXPIRATION_FUDGE, [key.encode() for key in also_get]
        )
    except Exception as exc:  # noqa: BLE001 - store down: fail closed
        raise ServiceUnavailable("The rate-limit store is unavailable; request refused.") from exc
    return RateLimitUsage(
        limit=limit,
        remaining=max(limit - count, 0),
        reset=max(window - int(time.time()), 0),
        limited=count > limit,
        generation=int(generation) if generation is not None else None,
        prefetched=dict(zip(also_get, values, strict=True)),
    )


def _leased_hit(key_prefix: str, rate: str) -> RateLimitUsage:
    """Count one request from this thread's lease for the key, taking a new lease when it is used up."""
    limit, period = _split_rate(rate)
    window = _get_window(key_prefix, period)
    leases = _counter.leases
    # Bounded (a thread serving very many keys starts over), and never inherited through fork: a child
    # handing out its parent's counts would admit them twice.
    if leases is None or len(leases) > 1024 or _counter.leases_pid != os.getpid():
        leases = _counter.leases = {}
        _counter.leases_pid = os.getpid()
    lease = leases.get((key_prefix, rate))
    if lease is None or lease.window != window:
        lease = None
    elif lease.next > lease.last and lease.last < limit:
        lease = None  # used up, and the window may have counts left: take another
    if lease is None:
        generation_key, counter_key = _counter_keys(key_prefix, rate, window)
        try:
            _, count, size, _ = _count(generation_key, counter_key, period + EXPIRATION_FUDGE, (), (LEASE_MAX, limit))
        except Exception as exc:  # noqa: BLE001 - store down: fail closed
            raise ServiceUnavailable("The rate-limit store is unavailable; request refused.") from exc
        lease = leases[(key_prefix, rate)] = _Lease(window=window, next=count - size + 1, last=count)
    # Past the end of a spent lease the window is over its limit: every further request is refused.
    taken = lease.next
    if taken <= lease.last:
        lease.next += 1
    return RateLimitUsage(
        limit=limit,
        remaining=max(limit - taken, 0),
        reset=max(window - int(time.time()), 0),
        limited=taken > limit,
    )
