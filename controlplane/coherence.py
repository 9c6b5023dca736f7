"""Process-local trust in the API-key generation, kept strict by a push, a heartbeat and a barrier.

Every API request must see a key change (a revocation above all) made anywhere, on its very next
request. The plain way is one Redis round trip per request that reads the shared generation (see
`keycache`); on two small cores that round trip is the largest single cost of a request. This module
lets a serving process know the generation without asking:

- A **listener** thread per process subscribes to a channel, and heartbeats (every
  `HEARTBEAT_SECONDS`, and at once on a message): one script reads the generation and the change
  *epoch*, registers the process until `LISTENER_TTL_MS` from now (Redis's clock), and records the epoch
  the process had *applied* before this beat as its acknowledgement. The process applies what it read
  (dropping its cached key records when the generation moved) and, if the epoch moved, beats again at
  once to acknowledge it.
- The process **trusts** its applied generation only until `TRUST_SECONDS` after the start of the
  beat that read it, which is well inside its registration: if the listener stalls or loses Redis, the
  process falls back to the per-request round trip long before its registration lapses.
- A **writer** (`barrier()`, run when a key change commits) increments the epoch, publishes it, and
  waits until every registered process has acknowledged it or can no longer trust anything older. So
  when the revoking call returns, no process can still trust a generation from before the change.

The same beat can carry other shared values a process wants to read on every request without a round
trip: a caller names cache keys (`follow`, then `trusted_values`), the listener reads them in every beat, and a writer
that changes one runs the same barrier after its commit (the config store does this with namespace
revisions, so a config write is visible to every process's reads once the write returns).

A process that does not acknowledge is waited for only until its trust must have lapsed
(`SAFE_AFTER_SECONDS` after the epoch was counted); if Redis lost its state recently (the epoch was
counted from scratch within that time plus a beat), the barrier waits that long regardless. Known
limits: a forward jump of Redis's clock can drop a registration early; generations restart at 1 after
Redis loses its data.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

from django.core.cache import cache

logger = logging.getLogger("controlplane.access")

EPOCH_KEY = "access:coherence-epoch"
LISTENERS_KEY = "access:coherence-listeners"
ACK_KEY = "access:coherence-ack:%s"
CHANNEL = "access:coherence"
LISTENER_TTL_MS = 1000
HEARTBEAT_SECONDS = 0.2
TRUST_SECONDS = 0.6  # < LISTENER_TTL_MS: trust ends well before the registration can lapse
# A process that has not acknowledged an epoch this long after it was counted cannot still trust anything
# read before it: every beat that read older state started before the count, and trust ends
# TRUST_SECONDS after a beat's start.
SAFE_AFTER_SECONDS = TRUST_SECONDS + 0.05
EPOCH_BORN_KEY = "access:coherence-epoch-born"
TRACKED_MAX = 1024  # cache keys one process follows in its beat

# KEYS: epoch, listeners zset, generation, this process's ack key, then tracked keys.
# ARGV: process id, ttl ms, applied epoch. GET gives false for a missing key, so the reply has no holes.
_HEARTBEAT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', KEYS[3], 1, 'NX')
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
local epoch = tonumber(redis.call('GET', KEYS[1]) or '0')
local applied = tonumber(ARGV[3])
if applied > epoch then applied = -1 end  -- Redis lost its state: what we applied says nothing now
redis.call('SET', KEYS[4], applied, 'PX', ARGV[2])
local reply = {redis.call('GET', KEYS[1]) or '0', redis.call('GET', KEYS[3])}
for i = 5, #KEYS do reply[#reply + 1] = redis.call('GET', KEYS[i]) end
return reply
"""
# KEYS: epoch, listeners zset, epoch birth time. ARGV: channel. Returns the new epoch, the epoch's age in
# ms (how long since Redis last started counting from scratch) and the registered processes.
_BARRIER_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('EXISTS', KEYS[3]) == 0 then redis.call('SET', KEYS[3], now) end
local born = tonumber(redis.call('GET', KEYS[3]) or now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local epoch = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', ARGV[1], epoch)
return {epoch, now - born, redis.call('ZRANGE', KEYS[2], 0, -1)}
"""


class _State:
    """What this process has applied, and until when it may trust it without asking Redis."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pid = 0
        self.pool: Any = None
        self.generation = 0
        self.epoch = 0
        self.trusted_until = 0.0
        self.listener: _Listener | None = None
        self.values: dict[str, bytes | None] = {}  # tracked cache key -> value as of the last beat
        self.wanted: set[str] = set()  # cache keys to track from the next beat on
        self.exit_hook = False


_state = _State()


def _client():  # type: ignore[no-untyped-def]
    return cache.client.get_client(write=True)  # django-redis: the cache's redis client


def trusted_generation(pool: Any) -> int | None:
    """The API-key generation this process may use without a round trip, or None (ask Redis).

    `pool` is the cache's current connection pool: trust is tied to the Redis the listener listens
    to, so a reconfigured cache (tests do it) is never answered from another server's state. The
    first call in a process starts its listener; it trusts nothing until the first beat.
    """
    state = _state
    if state.pid != os.getpid() or state.pool is not pool:
        _start(pool)
        return None
    if time.monotonic() < state.trusted_until:
        return state.generation
    listener = state.listener
    if listener is not None and not listener.is_alive() and not listener.stopping.is_set():
        logger.warning("API-key coherence listener had died; starting a new one")
        _start(pool, restart=True)
    return None


def trusted_values(pool: Any, keys: Sequence[str]) -> dict[str, bytes | None] | None:
    """The values of the shared-cache `keys` (full, prefixed names) as this process knows them, or None.

    None when the process does not trust its state, or does not follow one of the keys (`follow`); the
    caller then reads them from Redis. A value is None when the key is absent in Redis.
    """
    state = _state
    if state.pid != os.getpid() or state.pool is not pool or time.monotonic() >= state.trusted_until:
        return None
    values = state.values
    try:
        return {key: values[key] for key in keys}
    except KeyError:
        return None


def _start(pool: Any, *, restart: bool = False) -> None:
    with _state.lock:
        if not restart and _state.pid == os.getpid() and _state.pool is pool:
            return
        _state.trusted_until = 0.0  # first: nothing learnt from another server or parent is trusted
        if _state.listener is not None:
            _state.listener.stop()
        from controlplane.access import keycache

        keycache.drop_all()
        _state.generation = 0
        _state.pid = os.getpid()
        _state.pool = pool
        _state.trusted_until = 0.0
        _state.epoch = 0
        _state.values = {}
        _state.wanted = set()
        _state.listener = _Listener(pool)
        _state.listener.start()
        if not _state.exit_hook:
            atexit.register(_deregister)
            _state.exit_hook = True


def _deregister() -> None:
    """At a clean exit (a gunicorn worker recycled), leave the registry so writers need not wait 1 s."""
    listener = _state.listener
    if listener is None or _state.pid != os.getpid():
        return
    listener.stop()
    listener.join(timeout=1.0)  # a beat in flight would register the process again
    try:
        import redis

        client = redis.Redis(connection_pool=listener.pool)
        client.zrem(cache.make_key(LISTENERS_KEY), listener.ident_token)
        client.delete(cache.make_key(ACK_KEY % listener.ident_token))
    except Exception as exc:  # noqa: BLE001 - the registration lapses by itself within LISTENER_TTL_MS
        logger.debug("Could not leave the coherence registry at exit: %s", exc)


class _Listener(threading.Thread):
    """Subscribes to key changes and heartbeats; see the module docstring for the protocol."""

    def __init__(self, pool: Any) -> None:
        super().__init__(name="apikey-coherence", daemon=True)
        self.pool = pool
        self.ident_token = uuid.uuid4().hex
        self.stopping = threading.Event()

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        backoff, failures = 0.05, 0
        while not self.stopping.is_set():
            try:
                self._listen()
                backoff, failures = 0.05, 0
            except Exception as exc:  # noqa: BLE001 - any Redis trouble: stop trusting, retry
                if _state.listener is self:
                    _state.trusted_until = 0.0
                failures += 1
                # Requests are still served (one round trip each), so a blip is not worth a warning;
                # a listener that keeps failing is.
                log = logger.warning if failures == 5 or failures % 100 == 0 else logger.debug
                log("API-key coherence listener reconnecting (%d failures in a row): %s", failures, exc)
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, 2.0)

    def _listen(self) -> None:
        import redis

        from controlplane.access.keycache import GENERATION_KEY

        client = redis.Redis(connection_pool=self.pool)
        base = [cache.make_key(name) for name in (EPOCH_KEY, LISTENERS_KEY, GENERATION_KEY)]
        base.append(cache.make_key(ACK_KEY % self.ident_token))
        heartbeat = client.register_script(_HEARTBEAT_LUA)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(cache.make_key(CHANNEL))
            while not self.stopping.is_set() and _state.listener is self:
                started = time.monotonic()
                acknowledged = _state.epoch  # what this beat reports as applied
                tracked = sorted(_state.wanted)
                reply = heartbeat(keys=base + tracked, args=[self.ident_token, LISTENER_TTL_MS, acknowledged])
                epoch, generation = reply[0], reply[1]
                self._apply(int(epoch), int(generation), dict(zip(tracked, reply[2:], strict=True)), started)
                if int(epoch) != acknowledged:
                    continue  # beat again at once: that beat acknowledges the epoch just applied
                # Wait for a change message or the next beat; either way, beat again.
                pubsub.get_message(timeout=HEARTBEAT_SECONDS)
                while pubsub.get_message(timeout=0) is not None:
                    pass
        finally:
            if _state.listener is self:
                _state.trusted_until = 0.0
            pubsub.close()

    def _apply(self, epoch: int, generation: int, values: dict[str, bytes | None], started: float) -> None:
        from controlplane.access import keycache

        with _state.lock:  # a listener replaced meanwhile (pool change) must not write the new state
            if _state.listener is not self:
                return
            _state.values = values  # one reference swap: readers see one beat's values or the next's
            if generation != _state.generation:
                keycache.drop_all()
                _state.generation = generation
            _state.epoch = epoch
            _state.trusted_until = started + TRUST_SECONDS


def barrier() -> None:
    """After a change has committed: return once no process can still trust what it knew before.

    Normally every registered process acknowledges the new epoch within a millisecond or two of the
    publish. A process that does not (it died, stalls, or its acknowledgement was evicted) is waited for
    only until `SAFE_AFTER_SECONDS` after the epoch was counted, when its trust has lapsed by
    construction. If Redis started counting epochs from scratch recently (data lost, flushed), the
    registry and acknowledgements say nothing, so the barrier waits that full time.
    """
    client = _client()
    script = client.register_script(_BARRIER_LUA)
    keys = [cache.make_key(EPOCH_KEY), cache.make_key(LISTENERS_KEY), cache.make_key(EPOCH_BORN_KEY)]
    epoch, age_ms, members = script(keys=keys, args=[cache.make_key(CHANNEL)])
    safe_at = time.monotonic() + SAFE_AFTER_SECONDS
    epoch = int(epoch)
    if int(age_ms) < (SAFE_AFTER_SECONDS + HEARTBEAT_SECONDS) * 1000:
        time.sleep(max(safe_at - time.monotonic(), 0))
        return
    pending = [member.decode() if isinstance(member, bytes) else member for member in members]
    pause = 0.0005
    while pending:
        acks = client.mget([cache.make_key(ACK_KEY % member) for member in pending])
        pending = [member for member, ack in zip(pending, acks, strict=True) if ack is None or int(ack) < epoch]
        if not pending or time.monotonic() >= safe_at:
            return
        time.sleep(min(pause, max(safe_at - time.monotonic(), 0)))
        pause = min(pause * 2, 0.02)


def follow(keys: Sequence[str]) -> None:
    """Follow the shared-cache `keys` in this process's beat from now on (see `trusted_values`).

    Callers follow only keys they have just served a real, permitted read of (the config store: a
    namespace that exists and the key may read), so a client cannot fill the list with made-up names.
    """
    state = _state
    if state.pid == os.getpid() and len(state.wanted) + len(keys) <= TRACKED_MAX:
        state.wanted.update(keys)
