"""Process-local trust in shared generation counters, kept strict by a push, a heartbeat and a barrier.

Every API request must see a key change (a revocation above all) made anywhere, on its very next
request. The plain way is one Redis round trip per request that reads the shared generation (see
`controlplane.access.keycache`); on two small cores that round trip is the largest single cost of a
request. This module lets a serving process know such a generation without asking. It knows nothing
about API keys: an app *registers* the generation counters it needs (`register_generation`, with a
callback run whenever the value this process knows may have moved), and follows other shared values
(`follow`). Nothing here imports an app.

- A **listener** thread per process subscribes to a channel, and heartbeats (every
  `HEARTBEAT_SECONDS`, and at once on a message): one script reads the registered generations and the change
  *epoch*, registers the process until `LISTENER_TTL_MS` from now (Redis's clock), and records the epoch
  the process had *applied* before this beat as its acknowledgement. The process applies what it read
  (running a generation's callback when it moved: the access app drops its cached key records) and,
  if the epoch moved, beats again at once to acknowledge it.
- The process **trusts** its applied generation only until `TRUST_SECONDS` after the start of the
  beat that read it, which is well inside its registration: if the listener stalls or loses Redis, the
  process falls back to the per-request round trip long before its registration lapses.
- A **writer** (`barrier()`, run when a change commits) increments the epoch, publishes it, and
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

What it needs from Redis (checked by `redis_properties`, reported by /readyz and `check --deploy`):
- one server (or a primary with replicas), not Redis Cluster: the scripts touch keys that do not share
  a hash slot, and pub/sub is not routed across a cluster's shards;
- keys without a TTL are not evicted: the listener registry (a sorted set), the epoch and the
  generations have none, so an `allkeys-*` `maxmemory-policy` can evict them under memory pressure.
  An evicted registry makes a barrier return without waiting for processes that still trust old state,
  so such a policy is reported as a failure. `noeviction` or `volatile-*` are safe;
- server-side Lua (`EVAL`) and `TIME`, `PUBLISH`/`SUBSCRIBE` (not renamed or disabled).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from django.core.cache import cache

from controlplane import pubsub

logger = logging.getLogger("controlplane.coherence")

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

# KEYS: epoch, listeners zset, this process's ack key, then ARGV[4] generation keys, then tracked keys.
# ARGV: process id, ttl ms, applied epoch, number of generation keys. A missing generation starts at 1;
# GET gives false for a missing tracked key, so the reply has no holes.
_HEARTBEAT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local generations = tonumber(ARGV[4])
for i = 4, 3 + generations do redis.call('SET', KEYS[i], 1, 'NX') end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
local epoch = tonumber(redis.call('GET', KEYS[1]) or '0')
local applied = tonumber(ARGV[3])
if applied > epoch then applied = -1 end  -- Redis lost its state: what we applied says nothing now
redis.call('SET', KEYS[3], applied, 'PX', ARGV[2])
local reply = {redis.call('GET', KEYS[1]) or '0'}
for i = 4, #KEYS do reply[#reply + 1] = redis.call('GET', KEYS[i]) end
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
        self.generations: dict[str, int] = {}  # registered generation name -> value as of the last beat
        self.epoch = 0
        self.trusted_until = 0.0
        self.listener: _Listener | None = None
        self.values: dict[str, bytes | None] = {}  # tracked cache key -> value as of the last beat
        self.wanted: set[str] = set()  # cache keys to track from the next beat on
        self.exit_hook = False


_state = _State()
# Registered generation counters: cache key name (unprefixed) -> what to run when the value moves (and
# when this process starts over, since then nothing it knew counts).
_generations: dict[str, Callable[[], None]] = {}


def register_generation(name: str, on_change: Callable[[], None]) -> None:
    """Have every beat read the shared counter `name` (a cache key) and run `on_change` when it moves.

    Called by an app at import time (the access app registers its API-key generation). A counter
    registered after a process's listener started is picked up by its next start; `trusted_generation`
    answers None for it until then.
    """
    _generations[name] = on_change


def _client():  # type: ignore[no-untyped-def]
    return cache.client.get_client(write=True)  # django-redis: the cache's redis client


def _channel(client: Any) -> str:
    """The change channel of this deployment on `client`'s Redis (`controlplane.pubsub`)."""
    return pubsub.channel(CHANNEL, int(client.connection_pool.connection_kwargs.get("db", 0) or 0))


def trusted_generation(pool: Any, name: str) -> int | None:
    """The registered generation `name` as this process may use it without a round trip, or None (ask Redis).

    `pool` is the cache's current connection pool: trust is tied to the Redis the listener listens
    to, so a reconfigured cache (tests do it) is never answered from another server's state. The
    first call in a process starts its listener; it trusts nothing until the first beat.
    """
    state = _state
    if state.pid != os.getpid() or state.pool is not pool:
        _start(pool)
        return None
    if time.monotonic() < state.trusted_until:
        return state.generations.get(name)
    listener = state.listener
    if listener is not None and not listener.is_alive() and not listener.stopping.is_set():
        logger.warning("Coherence listener had died; starting a new one")
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
        for on_change in list(_generations.values()):
            on_change()
        _state.generations = {}
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
    """Subscribes to change messages and heartbeats; see the module docstring for the protocol."""

    def __init__(self, pool: Any) -> None:
        super().__init__(name="coherence-listener", daemon=True)
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
                log("Coherence listener reconnecting (%d failures in a row): %s", failures, exc)
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, 2.0)

    def _listen(self) -> None:
        import redis

        client = redis.Redis(connection_pool=self.pool)
        names = sorted(_generations)
        base = [cache.make_key(EPOCH_KEY), cache.make_key(LISTENERS_KEY), cache.make_key(ACK_KEY % self.ident_token)]
        base += [cache.make_key(name) for name in names]
        heartbeat = client.register_script(_HEARTBEAT_LUA)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(_channel(client))
            while not self.stopping.is_set() and _state.listener is self:
                started = time.monotonic()
                acknowledged = _state.epoch  # what this beat reports as applied
                tracked = sorted(_state.wanted)
                reply = heartbeat(
                    keys=base + tracked, args=[self.ident_token, LISTENER_TTL_MS, acknowledged, len(names)]
                )
                epoch = reply[0]
                generations = {name: int(value) for name, value in zip(names, reply[1 : 1 + len(names)], strict=True)}
                values = dict(zip(tracked, reply[1 + len(names) :], strict=True))
                self._apply(int(epoch), generations, values, started)
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

    def _apply(self, epoch: int, generations: dict[str, int], values: dict[str, bytes | None], started: float) -> None:
        with _state.lock:  # a listener replaced meanwhile (pool change) must not write the new state
            if _state.listener is not self:
                return
            _state.values = values  # one reference swap: readers see one beat's values or the next's
            if generations != _state.generations:
                for name, value in generations.items():
                    if _state.generations.get(name) != value:
                        _generations[name]()
                _state.generations = generations
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
    epoch, age_ms, members = script(keys=keys, args=[_channel(client)])
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


# Eviction policies that may evict keys without a TTL: the listener registry, the epoch and the
# generations have none, and losing the registry makes a barrier stop waiting for live processes.
UNSAFE_EVICTION = ("allkeys-lru", "allkeys-lfu", "allkeys-random")


def redis_properties() -> dict[str, Any]:
    """What the shared Redis says about the properties this module relies on (see the module docstring).

    `maxmemory_policy` is "unknown" when `CONFIG` is disabled or renamed (managed services often do
    that); `cluster` is None when `INFO` is not allowed. `problems` lists what breaks the guarantees
    (an `allkeys-*` policy, Redis Cluster); `warnings` what cannot be verified.
    """
    from redis.exceptions import ResponseError

    client = _client()
    try:
        policy = str(client.config_get("maxmemory-policy").get("maxmemory-policy") or "unknown")
    except ResponseError:
        policy = "unknown"
    try:
        cluster: bool | None = int(client.info("cluster").get("cluster_enabled", 0)) == 1
    except ResponseError:
        cluster = None
    problems: list[str] = []
    warnings: list[str] = []
    if policy in UNSAFE_EVICTION:
        problems.append(
            f"maxmemory-policy is {policy}: Redis may evict the coherence listener registry, after which "
            "a key revocation can return before every process has dropped the key; use noeviction or volatile-*"
        )
    elif policy == "unknown":
        warnings.append("maxmemory-policy could not be read (CONFIG disabled); make sure it is not allkeys-*")
    if cluster:
        problems.append("Redis Cluster is not supported: coherence scripts and pub/sub need a single Redis server")
    elif cluster is None:
        warnings.append("cluster mode could not be read (INFO disabled); Redis Cluster is not supported")
    return {"maxmemory_policy": policy, "cluster": cluster, "problems": problems, "warnings": warnings}
