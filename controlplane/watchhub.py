"""Blocking queries: one async hub per watched kind (config namespaces, registry services) per ASGI process.

A *topic* says what is watched: names with a durable, increasing index (a namespace's revision, a
service's registry index) plus an id that changes when the thing is deleted and recreated. Writers call
`publish(topic, name, index, id)` after commit: it wakes waiters in the same process and, in production,
publishes on Redis (`<channel prefix><name>`, named for this deployment by `controlplane.pubsub`). Each ASGI process runs one `WatchHub` per topic with one
Redis subscription (production) and one shared poller that reads the indexes of watched names every
`poll_seconds()` (the only path in embedded mode, where writes happen in the Celery worker too; a safety
net in production). Waiters are futures: no thread and no database connection is held while a watch
waits. Answers are loaded once per (name, index, variant) for every waiter that needs them.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import re
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

import redis
import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from controlplane import pubsub

logger = logging.getLogger("controlplane.watch")
T = TypeVar("T")
DELETED = -1
# A wake-up resolving at least this many waiters freezes the GC's view of older objects for a moment.
FREEZE_AT = 256
FREEZE_SECONDS = 2.0
# Variants (discovery filters) of one name whose answers a wake-up loads before resolving its waiters.
MAX_PRELOADED_VARIANTS = 32
# Answers recorded for replay per name at its current index: a variant's, per visibility and scheme.
MAX_RECORDINGS = 4 * MAX_PRELOADED_VARIANTS
# The OpenAPI document states these rules (WAIT_PATTERN, INDEX_MAX), so the parser reads exactly them: ASCII
# digits only (`str.isdigit` takes "²", which `int` then refuses with a 500; `\d` takes other scripts' digits),
# no surrounding spaces, no trailing newline (`$` allows one), an index that fits the bigint it is compared with.
WAIT_PATTERN = r"^[0-9]+(\.[0-9]+)?(ms|s|m)?$"
INDEX_MAX = 2**63 - 1
_WAIT_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m)?")
_INDEX_RE = re.compile(r"[0-9]{1,40}")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}


def parse_blocking_params(query: Any, *, max_wait: float) -> tuple[int, float, dict[str, list[str]]]:
    """`(index, wait seconds, errors)` from a blocking query's `?index=N&wait=30s`; wait capped at `max_wait`."""
    errors: dict[str, list[str]] = {}
    index, wait = 0, max_wait
    raw_index = query.get("index", "0")
    if _INDEX_RE.fullmatch(raw_index) is None or int(raw_index) > INDEX_MAX:
        errors["index"] = [f"A non-negative integer index, at most {INDEX_MAX}."]
    else:
        index = int(raw_index)
    raw_wait = query.get("wait")
    if raw_wait is not None:
        match = _WAIT_RE.fullmatch(raw_wait)
        if match is None:
            errors["wait"] = ["A duration such as 30s, 5m or 500ms."]
        else:
            wait = min(float(match.group(1)) * _UNITS[match.group(2)], max_wait)
    return index, wait, errors


class Topic:
    """What one hub watches: its Redis channel prefix and how to read indexes (subclass per kind)."""

    name = "topic"
    channel_prefix = "controlplane:changed:"

    def redis_url(self) -> str | None:
        raise NotImplementedError

    def poll_seconds(self) -> float:
        raise NotImplementedError

    def fetch(self, names: list[str]) -> dict[str, tuple[int, int]]:
        """`{name: (id, index)}` for the names that exist (blocking ORM code, run on the hub's threads)."""
        raise NotImplementedError

    def index_of(self, answer: Any) -> int:
        """The index an answer loaded for this topic was read at."""
        return answer.index


_lock = threading.Lock()
_redis_clients: dict[str, Any] = {}
_shared_executor: ThreadPoolExecutor | None = None


def _redis(url: str) -> Any:
    client = _redis_clients.get(url)
    if client is None:
        with _lock:
            client = _redis_clients.get(url)
            if client is None:
                client = _redis_clients[url] = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    return client


def publish(topic: Topic, name: str, index: int, item_id: int) -> None:
    """Tell watchers everywhere that `name` reached `index` (call after commit); -1 means deleted.

    The id travels along so that a deleted and recreated item of the same name (whose index starts
    again) is recognised as new.
    """
    hub = WatchHub.current(topic)
    if hub is not None:
        hub.notify_threadsafe(name, index, item_id)
    url = topic.redis_url()
    if url:
        try:
            _redis(url).publish(pubsub.channel(topic.channel_prefix, pubsub.db_of(url)) + name, f"{item_id}:{index}")
        except Exception:  # noqa: BLE001 - the pollers still deliver the change, only later
            logger.warning(
                "Could not publish a %s change for %s on Redis; watchers fall back to polling", topic.name, name
            )


def executor() -> ThreadPoolExecutor:
    """Database work for watches runs on a few dedicated threads (`CONFIG_WATCH_DB_THREADS`, shared by
    every topic): a bounded number of database connections whatever the number of watchers."""
    global _shared_executor
    if _shared_executor is None:
        with _lock:
            if _shared_executor is None:
                threads = int(getattr(settings, "CONFIG_WATCH_DB_THREADS", 4))
                _shared_executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="watch-db")
    return _shared_executor


def _fresh(func: Callable[..., T], *args: Any) -> T:
    close_old_connections()  # outside Django's request cycle: recycle stale connections here
    return func(*args)


def _time_out(future: asyncio.Future[int | None]) -> None:
    if not future.done():
        future.set_result(None)


class Heads(dict):
    """The answers recorded for replay about one name at its current index, keyed by what identifies an
    answer (`controlplane.watchserver.after_wait`); recording one answers the waiters it applies to."""

    __slots__ = ("_express",)

    def __init__(self, express: Callable[[], int]) -> None:
        super().__init__()
        self._express = express

    def record(self, key: Hashable, recorded: Any) -> int:
        """Keep `recorded` under `key` (at most `MAX_RECORDINGS`, the oldest dropped), then answer the
        woken waiters it applies to (`express_woken`)."""
        if key not in self and len(self) >= MAX_RECORDINGS:
            del self[next(iter(self))]
        self[key] = recorded
        return self._express()


class WatchHub:
    """Waiters per name in one event loop for one topic, woken by pub/sub, in-process publishes or the poller."""

    _instances: dict[str, WatchHub] = {}

    def __init__(self, loop: asyncio.AbstractEventLoop, topic: Topic) -> None:
        self.loop = loop
        self.topic = topic
        self.waiters: dict[str, set[tuple[int, asyncio.Future[int | None]]]] = {}
        self.known: dict[str, tuple[int, int]] = {}  # name -> (id, index)
        self.executor = executor()
        self.tasks: list[asyncio.Task] = []
        self._answers: dict[tuple[str, Hashable], Any] = {}
        # Per name, the answers recorded for replay (`controlplane.watchserver.after_wait`); dropped
        # whenever the name's index moves, so a recording never outlives the index it was made at.
        self._heads: dict[str, Heads] = {}
        # Per name, the waiters that can be answered without resuming their task (`wait(express=...)`).
        self._express: dict[str, dict[asyncio.Future[int | None], Callable[[], bool]]] = {}
        # Per name, how to load each variant asked for: a wake-up loads them before resolving the waiters.
        self._loaders: dict[str, dict[Hashable, Callable[[], Any]]] = {}
        self._loading: dict[tuple[str, Hashable], asyncio.Task] = {}
        # What the waiters woken by the latest change may share (a key generation read once for all of
        # them); replaced at every wake-up that resolves someone, so never older than their change.
        self.wake_memo: dict[str, Any] = {"at": loop.time()}
        self._thaw: asyncio.TimerHandle | None = None

    @classmethod
    def current(cls, topic: Topic) -> WatchHub | None:
        return cls._instances.get(topic.name)

    @classmethod
    def for_running_loop(cls, topic: Topic) -> WatchHub:
        """The hub of `topic` in the running loop, started on first use (tasks run outside any request)."""
        loop = asyncio.get_running_loop()
        hub = cls._instances.get(topic.name)
        if hub is None or hub.loop is not loop or hub.loop.is_closed():
            hub = cls(loop, topic)
            cls._instances[topic.name] = hub
            empty = contextvars.Context()
            hub.tasks.append(loop.create_task(hub._poll(), context=empty))
            if topic.redis_url():
                hub.tasks.append(loop.create_task(hub._subscribe(), context=empty))
        return hub

    async def run_db(self, func: Callable[..., T], *args: Any) -> T:
        """Run blocking ORM code on the hub's threads (stale connections recycled first)."""
        return await sync_to_async(_fresh, thread_sensitive=False, executor=self.executor)(func, *args)

    def watcher_count(self) -> int:
        return sum(len(v) for v in self.waiters.values())

    def notify_threadsafe(self, name: str, index: int, item_id: int) -> None:
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.wake, name, index, item_id)

    def known_index(self, name: str, default: int = DELETED) -> int:
        known = self.known.get(name)
        return known[1] if known else default

    def wake(self, name: str, index: int, item_id: int) -> None:
        """Record `index` and resolve every waiter on `name` that waits for less.

        A different id means the item was recreated: its index replaces the old one even if lower.
        Index -1 (deleted) resolves every waiter; they then answer 404.
        """
        known = self.known.get(name)
        if index >= 0 and known is not None and known[0] == item_id and index <= known[1]:
            return
        if index < 0:
            self.known.pop(name, None)
        else:
            self.known[name] = (item_id, index)
        self._heads.pop(name, None)
        if known is not None and known[0] != item_id or index < 0:
            # Answers about the old item must not be served.
            for cached in [cached for cached in self._answers if cached[0] == name]:
                del self._answers[cached]
        waiting = self.waiters.get(name)
        if not waiting:
            return
        self.wake_memo = {"at": self.loop.time()}
        if len(waiting) >= FREEZE_AT:
            self._freeze_for_burst()
        loads = self._preload(name) if index >= 0 else []
        if loads:
            # The waiters are resolved once the answers they will ask for are loaded: otherwise each would
            # resume, find nothing cached and suspend again on the load (a second wake-up of every waiter).
            gathered = asyncio.gather(*loads, return_exceptions=True)
            gathered.add_done_callback(lambda _: self._resolve(name, index))
        else:
            self._resolve(name, index)

    def _resolve(self, name: str, index: int) -> None:
        for waited, future in list(self.waiters.get(name, ())):
            if (waited < index or index < 0) and not future.done():
                future.set_result(index)

    def _preload(self, name: str) -> list[asyncio.Task]:
        """Start loading every answer of `name` asked for before (`answer` remembers its loaders)."""
        loads = []
        for variant, loader in self._loaders.get(name, {}).items():
            slot = (name, variant)
            loads.append(self._loading.get(slot) or self._start_load(slot, loader))
        return loads

    def _start_load(self, slot: tuple[str, Hashable], loader: Callable[[], Any]) -> asyncio.Task:
        task = self.loop.create_task(self.run_db(loader))
        self._loading[slot] = task
        task.add_done_callback(partial(self._loaded, slot))  # before any waiter's: the answer is cached first
        return task

    def _loaded(self, slot: tuple[str, Hashable], task: asyncio.Task) -> None:
        if self._loading.get(slot) is task:
            del self._loading[slot]
        if not task.cancelled() and task.exception() is None:
            self._answers[slot] = task.result()

    def _freeze_for_burst(self) -> None:
        """Keep the cyclic GC off the objects of every waiting request while a burst of answers goes out.

        Thousands of waiting requests are hundreds of thousands of long-lived objects; the allocations of
        answering them all at once trigger collections that would traverse every one of them, again and
        again (measured: a large share of the fan-out's CPU). `gc.freeze` moves what exists now out of
        the collector's sight (O(1)); `gc.unfreeze` shortly after gives it back, so nothing leaks.
        """
        gc.freeze()
        if self._thaw is None:
            self._thaw = self.loop.call_later(FREEZE_SECONDS, self._unfreeze)

    def _unfreeze(self) -> None:
        self._thaw = None
        gc.unfreeze()

    def heads_for(self, name: str) -> Heads:
        """Where answers about `name` at its current index are recorded for replay (emptied when it moves)."""
        heads = self._heads.get(name)
        if heads is None:
            heads = self._heads[name] = Heads(partial(self.express_woken, name))
        return heads

    async def wait(self, name: str, index: int, timeout: float, express: Callable[[], bool] | None = None) -> bool:
        """Wait until `name` passes `index` or `timeout` ends; True when it changed.

        `express`, when given, may answer this waiter once a change woke it and before its task resumes:
        `express_woken` calls it, and it returns whether it answered (the task then only finishes up).

        The future is awaited directly, with a timer resolving it to None, rather than through
        `asyncio.wait_for` (an extra future and two more callbacks per waiter, run when 10,000 wake at once).
        """
        if self.known_index(name) > index:
            return True
        future: asyncio.Future[int | None] = self.loop.create_future()
        item = (index, future)
        self.waiters.setdefault(name, set()).add(item)
        if express is not None:
            self._express.setdefault(name, {})[future] = express
        timer = self.loop.call_later(timeout, _time_out, future)
        try:
            return await future is not None
        finally:
            timer.cancel()
            bucket = self.waiters.get(name)
            if bucket is not None:
                bucket.discard(item)
                if not bucket:
                    del self.waiters[name]
            if express is not None:
                expressing = self._express.get(name)
                if expressing is not None:
                    expressing.pop(future, None)
                    if not expressing:
                        del self._express[name]

    def express_woken(self, name: str) -> int:
        """Answer now every waiter on `name` that a change woke and whose task has not resumed yet, as far
        as each one's `express` can; returns how many were answered.

        Called when an answer about `name` has just been recorded (`Heads.record`): the waiters it applies
        to are answered in one loop step, one write each, before any of their tasks runs, so the last of
        10,000 answers leaves after 10,000 writes instead of after 10,000 request cycles. A waiter whose
        `express` declines (no recording for its answer yet, a key that needs the database, a refusal)
        stays, and its task answers it the usual way.
        """
        expressing = self._express.get(name)
        if not expressing:
            return 0
        answered = 0
        for future, express in list(expressing.items()):
            if future.cancelled() or not future.done() or future.result() is None:
                continue  # still waiting, or its wait timed out (answered with the unchanged index)
            try:
                done = express()
            except Exception:  # noqa: BLE001 - a refusal is the task's to answer, with its problem document
                done = False
            if done:
                del expressing[future]
                answered += 1
        return answered

    async def answer(self, name: str, min_index: int, loader: Callable[[], Any], variant: Hashable = None) -> Any:
        """What `loader()` returns for `name` at `min_index` or later, loaded once for every waiter.

        `loader` runs on the hub's threads; `topic.index_of` reads the index of what it returns; `variant`
        separates answers of one name that differ by request (filters).
        """
        slot = (name, variant)
        index_of = self.topic.index_of
        self.expect(name, loader, variant)
        while True:
            cached = self.cached_answer(name, min_index, variant)
            if cached is not None:
                return cached
            task = self._loading.get(slot) or self._start_load(slot, loader)
            loaded = await asyncio.shield(task)  # `_loaded` has cached it
            if index_of(loaded) >= min_index:
                return loaded
            min_index = index_of(loaded)  # the index moved back (item recreated): take what is there

    def expect(self, name: str, loader: Callable[[], Any], variant: Hashable = None) -> None:
        """Have the next wake-up of `name` load `loader()`'s answer before it resolves its waiters (a
        waiter says what it will ask `answer` for, so that even the first change finds it loaded)."""
        loaders = self._loaders.setdefault(name, {})
        if variant not in loaders and len(loaders) >= MAX_PRELOADED_VARIANTS:
            # Filters are the client's choice: keep the most recent ones, and only their answers (a
            # client sending endless distinct filters must not grow this process without end).
            oldest = next(iter(loaders))
            del loaders[oldest]
            self._answers.pop((name, oldest), None)
        loaders[variant] = loader

    def cached_answer(self, name: str, min_index: int, variant: Hashable = None) -> Any:
        """The answer `answer` would return at once (loaded at `min_index` or later), else None."""
        cached = self._answers.get((name, variant))
        if cached is not None and self.topic.index_of(cached) >= min_index:
            return cached
        return None

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.topic.poll_seconds())
            if not self.waiters:
                continue
            try:
                indexes = await self.run_db(self.topic.fetch, list(self.waiters))
            except Exception:  # noqa: BLE001 - keep polling; a database blip must not end all watches
                logger.warning("Watch poller (%s) could not read indexes", self.topic.name, exc_info=True)
                continue
            for name in list(self.waiters):
                if name in indexes:
                    self.wake(name, indexes[name][1], indexes[name][0])
                elif name in self.known:
                    self.wake(name, DELETED, self.known[name][0])

    async def _subscribe(self) -> None:
        backoff = 0.5
        url = self.topic.redis_url()
        prefix = pubsub.channel(self.topic.channel_prefix, pubsub.db_of(url))
        while True:
            client = aioredis.Redis.from_url(url)
            try:
                subscription = client.pubsub()
                await subscription.psubscribe(pubsub.pattern(prefix))
                backoff = 0.5
                async for message in subscription.listen():
                    if message.get("type") != "pmessage":
                        continue
                    channel = message["channel"]
                    channel = channel.decode() if isinstance(channel, bytes) else channel
                    try:
                        item_id, _, index = message["data"].decode().partition(":")
                        self.wake(channel[len(prefix) :], int(index), int(item_id))
                    except (AttributeError, TypeError, ValueError):
                        continue
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - reconnect with backoff; the poller covers the gap
                logger.warning("Watch subscription (%s) to Redis lost; reconnecting", self.topic.name, exc_info=True)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10)
            finally:
                await client.aclose()
