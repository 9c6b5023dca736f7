"""Change notification for watches: publish on commit, one async hub per watch-server process.

Writers call `publish(namespace, revision)` after commit: it wakes watchers in the same process and, in
production, publishes on Redis (`configstore:changed:<namespace>`). Each ASGI process runs one `WatchHub`
with one Redis subscription (production) and one shared poller that reads the revisions of watched
namespaces every `CONFIG_WATCH_POLL_SECONDS` (the only path in embedded mode, where writes can happen
in the Celery worker; a safety net in production). Waiters are futures: no thread and no database
connection is held while a watch waits.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import redis
import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.db import close_old_connections

from configstore import conf

logger = logging.getLogger("configstore.watch")
CHANNEL_PREFIX = "configstore:changed:"
T = TypeVar("T")

_redis_client: Any = None
_redis_lock = threading.Lock()


def _redis() -> Any:
    global _redis_client
    if _redis_client is None:
        with _redis_lock:
            if _redis_client is None:
                _redis_client = redis.Redis.from_url(conf.redis_url(), socket_timeout=1, socket_connect_timeout=1)
    return _redis_client


def publish(namespace: str, revision: int, namespace_id: int) -> None:
    """Tell watchers everywhere that `namespace` reached `revision` (call after commit).

    The namespace id travels along so that a deleted and recreated namespace of the same name (whose
    revisions start again at 0) is recognised as new. Revision -1 means the namespace was deleted.
    """
    hub = WatchHub.current()
    if hub is not None:
        hub.notify_threadsafe(namespace, revision, namespace_id)
    if conf.redis_url():
        try:
            _redis().publish(CHANNEL_PREFIX + namespace, f"{namespace_id}:{revision}")
        except Exception:  # noqa: BLE001 - the pollers still deliver the change, only later
            logger.warning("Could not publish config change for %s on Redis; watchers fall back to polling", namespace)


_shared_executor: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    """Database work for watches runs on a few dedicated threads: a bounded number of connections."""
    global _shared_executor
    if _shared_executor is None:
        with _redis_lock:
            if _shared_executor is None:
                _shared_executor = ThreadPoolExecutor(
                    max_workers=conf.watch_db_threads(), thread_name_prefix="config-watch"
                )
    return _shared_executor


def _fetch_revisions(names: list[str]) -> dict[str, tuple[int, int]]:
    from configstore.models import Namespace

    close_old_connections()
    return {
        name: (pk, revision)
        for name, pk, revision in Namespace.objects.filter(name__in=names).values_list("name", "id", "revision")
    }


class WatchHub:
    """Waiters per namespace in one event loop, woken by pub/sub, in-process publishes or the poller."""

    _instance: WatchHub | None = None

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.waiters: dict[str, set[tuple[int, asyncio.Future[int]]]] = {}
        self.known: dict[str, tuple[int, int]] = {}  # namespace -> (id, revision)
        self.executor = _executor()
        self.tasks: list[asyncio.Task] = []
        self._snapshots: dict[str, Any] = {}
        self._loading: dict[str, asyncio.Task] = {}

    @classmethod
    def current(cls) -> WatchHub | None:
        return cls._instance

    @classmethod
    def for_running_loop(cls) -> WatchHub:
        """The hub of the running loop, started on first use (tasks run outside any request context)."""
        loop = asyncio.get_running_loop()
        hub = cls._instance
        if hub is None or hub.loop is not loop or hub.loop.is_closed():
            hub = cls(loop)
            cls._instance = hub
            empty = contextvars.Context()
            hub.tasks.append(loop.create_task(hub._poll(), context=empty))
            if conf.redis_url():
                hub.tasks.append(loop.create_task(hub._subscribe(), context=empty))
        return hub

    async def run_db(self, func: Callable[..., T], *args: Any) -> T:
        """Run blocking ORM code on the hub's threads."""
        return await sync_to_async(func, thread_sensitive=False, executor=self.executor)(*args)

    def watcher_count(self) -> int:
        return sum(len(v) for v in self.waiters.values())

    def notify_threadsafe(self, namespace: str, revision: int, namespace_id: int) -> None:
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.wake, namespace, revision, namespace_id)

    def known_revision(self, namespace: str, default: int = -1) -> int:
        known = self.known.get(namespace)
        return known[1] if known else default

    def wake(self, namespace: str, revision: int, namespace_id: int) -> None:
        """Record `revision` and resolve every waiter on `namespace` that waits for less.

        A different id means the namespace was recreated: its revision replaces the old one even if
        lower. Revision -1 (deleted) resolves every waiter; they then answer 404.
        """
        known = self.known.get(namespace)
        if revision >= 0 and known is not None and known[0] == namespace_id and revision <= known[1]:
            return
        if revision < 0:
            self.known.pop(namespace, None)
        else:
            self.known[namespace] = (namespace_id, revision)
        if known is not None and known[0] != namespace_id or revision < 0:
            self._snapshots.pop(namespace, None)  # a snapshot of the old namespace must not be served
        for index, future in list(self.waiters.get(namespace, ())):
            if (index < revision or revision < 0) and not future.done():
                future.set_result(revision)

    async def wait(self, namespace: str, index: int, timeout: float) -> bool:
        """Wait until `namespace` passes `index` or `timeout` ends; True when it changed."""
        if self.known_revision(namespace) > index:
            return True
        future: asyncio.Future[int] = self.loop.create_future()
        item = (index, future)
        self.waiters.setdefault(namespace, set()).add(item)
        try:
            await asyncio.wait_for(future, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            bucket = self.waiters.get(namespace)
            if bucket is not None:
                bucket.discard(item)
                if not bucket:
                    del self.waiters[namespace]

    async def snapshot(self, namespace: str, min_revision: int) -> Any:
        """The effective config at `min_revision` or later, loaded once for all waiters that need it."""
        from configstore.selectors import config_snapshot

        while True:
            cached = self._snapshots.get(namespace)
            if cached is not None and cached.revision >= min_revision:
                return cached
            task = self._loading.get(namespace)
            if task is None:
                task = self.loop.create_task(self.run_db(_load_snapshot, config_snapshot, namespace))
                self._loading[namespace] = task
            try:
                snapshot = await asyncio.shield(task)
            finally:
                if self._loading.get(namespace) is task and task.done():
                    del self._loading[namespace]
            self._snapshots[namespace] = snapshot
            if snapshot.revision >= min_revision:
                return snapshot
            min_revision = snapshot.revision  # the revision moved back (namespace recreated): take what is there

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(conf.watch_poll_seconds())
            if not self.waiters:
                continue
            try:
                revisions = await self.run_db(_fetch_revisions, list(self.waiters))
            except Exception:  # noqa: BLE001 - keep polling; a database blip must not end all watches
                logger.warning("Watch poller could not read revisions", exc_info=True)
                continue
            for name in list(self.waiters):
                if name in revisions:
                    self.wake(name, revisions[name][1], revisions[name][0])
                elif name in self.known:
                    self.wake(name, -1, self.known[name][0])

    async def _subscribe(self) -> None:
        backoff = 0.5
        while True:
            client = aioredis.Redis.from_url(conf.redis_url())
            try:
                pubsub = client.pubsub()
                await pubsub.psubscribe(CHANNEL_PREFIX + "*")
                backoff = 0.5
                async for message in pubsub.listen():
                    if message.get("type") != "pmessage":
                        continue
                    channel = (
                        message["channel"].decode() if isinstance(message["channel"], bytes) else message["channel"]
                    )
                    try:
                        namespace_id, _, revision = message["data"].decode().partition(":")
                        self.wake(channel[len(CHANNEL_PREFIX) :], int(revision), int(namespace_id))
                    except (AttributeError, TypeError, ValueError):
                        continue
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - reconnect with backoff; the poller covers the gap
                logger.warning("Watch subscription to Redis lost; reconnecting", exc_info=True)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10)
            finally:
                await client.aclose()


def _load_snapshot(loader: Callable[[str], Any], namespace: str) -> Any:
    close_old_connections()
    return loader(namespace)
