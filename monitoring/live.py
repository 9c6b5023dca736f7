"""Live dashboard updates: server-sent events from the ASGI server, one coalesced message per tick.

How a stored change reaches an open page (the same crossing as configstore/notify.py):
- Every platform change is an `Event` row. When one commits, the writing process (web, worker, beat)
  publishes its id on Redis (`monitoring:live`) in production; in embedded mode (no Redis) nothing is
  sent and each ASGI process polls the newest event id instead, once per tick, only while streams are open.
- Each ASGI process runs one `LiveHub`. When a change is announced (at most once per tick,
  MONITORING_LIVE_TICK_MS, default 1 s; without Redis it polls once per tick) it reads
  the events since the last tick (one query), the current status of the services they name (one query)
  and the counts (three grouped queries), and puts ONE message on every open stream: a burst of 1,000
  transitions within a tick is one message, and the database work does not grow with the number of streams.
- A stream is an async generator waiting on a queue: no thread and no database connection per viewer.
- Under WSGI (gunicorn) the stream endpoint answers 204, which tells EventSource to stop; the page then
  polls `live/state/` every few seconds (the fallback). In production route /dashboard/live/ to uvicorn.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections, transaction

from controlplane import pubsub

logger = logging.getLogger("monitoring.live")
CHANNEL = "monitoring:live"
MAX_EVENTS_PER_TICK = 5000  # beyond this in one tick the page is told to reload instead of patched
MAX_SERVICES_PER_MESSAGE = 500
MAX_TARGETS_PER_MESSAGE = 2000  # instance + check statuses in one message; beyond, the page reloads
QUEUE_SIZE = 8
# Status words a transition may carry to the page (allow-list: event data is not otherwise sent live).
LIVE_STATUSES = frozenset({"passing", "warning", "critical", "maintenance", "unknown"})


def tick_seconds() -> float:
    return float(getattr(settings, "MONITORING_LIVE_TICK_SECONDS", 1.0))


def keepalive_seconds() -> float:
    return float(getattr(settings, "MONITORING_LIVE_KEEPALIVE_SECONDS", 15.0))


def redis_url() -> str | None:
    return getattr(settings, "REDIS_URL", None) or None


_redis_client: Any = None
_lock = threading.Lock()


def _redis() -> Any:
    global _redis_client
    if _redis_client is None:
        with _lock:
            if _redis_client is None:
                import redis

                _redis_client = redis.Redis.from_url(redis_url(), socket_timeout=1, socket_connect_timeout=1)
    return _redis_client


def channel() -> str:
    """The live-update channel of this deployment (`controlplane.pubsub`)."""
    url = redis_url()
    return pubsub.channel(CHANNEL, pubsub.db_of(url) if url else 0)


def publish(event_id: int) -> None:
    """Tell every ASGI process that event `event_id` is stored (after commit). Embedded mode: the pollers see it."""
    hub = LiveHub.current()
    if hub is not None:
        hub.poke_threadsafe()
    if redis_url():
        try:
            _redis().publish(channel(), str(event_id))
        except Exception:  # noqa: BLE001 - the hubs' safety-net poll still sees the event, a few seconds later
            logger.warning("Could not publish a live update on Redis; dashboards fall back to polling")


def on_event_saved(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    """post_save of `Event`: publish once the row is committed (so a reader finds it)."""
    if created:
        event_id = instance.pk
        transaction.on_commit(lambda: publish(event_id))


def connect_signals() -> None:
    """Called from MonitoringConfig.ready() in every process, so workers publish too."""
    from django.db.models.signals import post_save

    from controlplane.events.models import Event

    post_save.connect(on_event_saved, sender=Event, dispatch_uid="monitoring.live.event_saved")


def collect(since: int) -> dict[str, Any]:
    """What changed after event `since`: the new last id, the services named, counts and alert totals.

    Blocking ORM code; the hub runs it on its threads, the polling fallback in the request.
    """
    from django.db.models import Count

    from controlplane.events.models import Event
    from monitoring.models import AlertState, AlertStatus
    from monitoring.selectors.dashboard import TRANSITION_KINDS, service_statuses, status_counts
    from monitoring.selectors.live_extra import target_statuses, top_alerts

    rows = list(
        Event.objects.filter(pk__gt=since)
        .order_by("pk")
        .values("id", "kind", "subject", "data", "created_at")[:MAX_EVENTS_PER_TICK]
    )
    if not rows:
        return {"last_event": since, "changed": 0}
    last = rows[-1]["id"]
    names = sorted({row["data"].get("service") for row in rows if isinstance(row["data"], dict)} - {None, ""})
    checks, instances = target_statuses(rows, LIVE_STATUSES)
    reload = (
        len(rows) >= MAX_EVENTS_PER_TICK
        or len(names) > MAX_SERVICES_PER_MESSAGE
        or len(checks) + len(instances) > MAX_TARGETS_PER_MESSAGE
    )
    if reload:
        checks, instances = {}, {}
    services = [] if reload or not names else list(service_statuses(names=[str(n) for n in names]).values())
    alerts = dict(
        AlertState.objects.filter(status__in=(AlertStatus.FIRING, AlertStatus.PENDING))
        .order_by()
        .values_list("status")
        .annotate(n=Count("id"))
    )
    return {
        "last_event": last,
        "changed": len(rows),
        "reload": reload,
        "services": services,
        "counts": status_counts(),
        "alerts": {"firing": alerts.get("firing", 0), "pending": alerts.get("pending", 0)},
        # The service page's instance and check cells, the overview's alert list and the alerts page's first
        # page follow from these (ids, names on the page and status words only).
        "checks": checks,
        "instances": instances,
        "alert_list": top_alerts(),
        # Kind and subject only: event data can quote check output, which the page does not need live. A
        # status transition also carries its two status words, so the page's "recent transitions" follow too.
        "events": [_live_event(r, TRANSITION_KINDS) for r in rows[-10:]],
    }


def _live_event(row: dict[str, Any], transition_kinds: tuple[str, ...]) -> dict[str, Any]:
    event = {"id": row["id"], "kind": row["kind"], "subject": row["subject"], "at": row["created_at"].isoformat()}
    data = row["data"] if isinstance(row["data"], dict) else {}
    if row["kind"] in transition_kinds and data.get("old") in LIVE_STATUSES and data.get("new") in LIVE_STATUSES:
        event["old"], event["new"] = data["old"], data["new"]
    return event


def _collect_in_thread(since: int) -> dict[str, Any]:
    close_old_connections()
    return collect(since)


def _newest_event_id() -> int:
    from monitoring.selectors.dashboard import last_event_id

    close_old_connections()
    return last_event_id()


_executor: ThreadPoolExecutor | None = None


def _threads() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        with _lock:
            if _executor is None:
                _executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="monitoring-live")
    return _executor


class LiveHub:
    """The open streams of one event loop, fed once per tick."""

    _instance: LiveHub | None = None

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.streams: set[asyncio.Queue[str]] = set()
        self.last_event: int | None = None
        self.poked = asyncio.Event()
        self.messages_sent = 0
        self.ticks_with_changes = 0
        self.tasks: list[asyncio.Task] = []

    @classmethod
    def current(cls) -> LiveHub | None:
        return cls._instance

    @classmethod
    def for_running_loop(cls) -> LiveHub:
        loop = asyncio.get_running_loop()
        hub = cls._instance
        if hub is None or hub.loop is not loop or hub.loop.is_closed():
            hub = cls(loop)
            cls._instance = hub
            empty = contextvars.Context()  # the tasks outlive the request that started them
            hub.tasks.append(loop.create_task(hub._run(), context=empty))
            if redis_url():
                hub.tasks.append(loop.create_task(hub._subscribe(), context=empty))
        return hub

    async def run_db(self, func: Any, *args: Any) -> Any:
        return await sync_to_async(func, thread_sensitive=False, executor=_threads())(*args)

    def poke_threadsafe(self) -> None:
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.poked.set)

    async def open(self) -> asyncio.Queue[str]:
        """A new stream's queue; the first stream of an idle hub fixes where changes are read from."""
        if self.last_event is None:
            self.last_event = await self.run_db(_newest_event_id)
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self.streams.add(queue)
        return queue

    def close(self, queue: asyncio.Queue[str]) -> None:
        self.streams.discard(queue)

    def broadcast(self, message: str) -> None:
        for queue in list(self.streams):
            if queue.full():  # a viewer that does not read: keep the newest, tell it to reload
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(_sse("update", {"reload": True}))
            else:
                queue.put_nowait(message)
        self.messages_sent += len(self.streams)

    async def _run(self) -> None:
        """Wait for a poke (Redis / in-process) or, without Redis, the next poll; then one read and one broadcast.

        A change is read as soon as it is announced, but broadcasts are at least a tick apart: an isolated
        transition goes out at once, a burst is coalesced into one message per tick.
        """
        safety_net = 5.0  # with Redis, still look every few seconds in case a message was lost
        last_read = 0.0
        while True:
            tick = tick_seconds()
            try:
                await asyncio.wait_for(self.poked.wait(), safety_net if redis_url() else tick)
            except TimeoutError:
                pass
            wait = tick - (self.loop.time() - last_read)
            if wait > 0:
                await asyncio.sleep(wait)
            if not self.streams or self.last_event is None:
                self.poked.clear()
                continue
            self.poked.clear()
            last_read = self.loop.time()
            try:
                payload = await self.run_db(_collect_in_thread, self.last_event)
            except Exception:  # noqa: BLE001 - a database blip must not end every stream; next tick retries
                logger.warning("Live dashboard update failed", exc_info=True)
                continue
            if payload["changed"]:
                self.last_event = payload["last_event"]
                self.ticks_with_changes += 1
                self.broadcast(_sse("update", payload))

    async def _subscribe(self) -> None:
        import redis.asyncio as aioredis

        backoff = 0.5
        while True:
            client = aioredis.Redis.from_url(redis_url())
            try:
                subscription = client.pubsub()
                await subscription.subscribe(channel())
                backoff = 0.5
                async for message in subscription.listen():
                    if message.get("type") == "message":
                        self.poked.set()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - reconnect; the safety-net poll covers the gap
                logger.warning("Live subscription to Redis lost; reconnecting", exc_info=True)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10)
            finally:
                await client.aclose()


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, default=str, separators=(',', ':'))}\n\n"


async def stream(hub: LiveHub) -> Any:
    """The body of one SSE response: a hello, then every broadcast, with comments as keep-alives."""
    queue = await hub.open()
    try:
        yield f"retry: 3000\n{_sse('hello', {'last_event': hub.last_event})}"
        while True:
            try:
                message = await asyncio.wait_for(queue.get(), keepalive_seconds())
            except TimeoutError:
                message = ": keep-alive\n\n"
            yield message
    finally:
        hub.close(queue)


def _staff_session(session_key: str) -> bool:
    """Whether the session belongs to an active staff user (Django's own check, session hash included)."""
    from importlib import import_module
    from types import SimpleNamespace

    from django.contrib.auth import get_user

    close_old_connections()
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    user = get_user(SimpleNamespace(session=store))  # type: ignore[arg-type]
    return bool(user.is_active and user.is_staff)


def _cookie(scope: dict, name: str) -> str | None:
    from http.cookies import SimpleCookie

    for key, value in scope.get("headers", []):
        if key == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # noqa: BLE001 - an unparsable cookie header is no session
                return None
            if name in jar:
                return jar[name].value
    return None


REAUTH_SECONDS = 60.0  # a stream whose user signed out or lost staff ends within this


async def _answer(send: Any, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def asgi_stream(scope: dict, receive: Any, send: Any) -> None:
    """`/dashboard/live/` answered in the event loop (controlplane/asgi.py routes it here under uvicorn).

    Through Django's handler every request gets its own thread (asgiref's per-request context) and keeps its
    database connection until the response ends — 500 open dashboards would hold 500 threads and 500
    PostgreSQL connections. Here the session is checked on the hub's two database threads, then the stream
    holds only a queue; the user is re-checked every minute.
    """
    hub = LiveHub.for_running_loop()
    if scope.get("method") not in ("GET", "HEAD"):
        await _answer(send, 405, b'{"detail": "GET only."}')
        return
    session_key = _cookie(scope, settings.SESSION_COOKIE_NAME)
    if not session_key or not await hub.run_db(_staff_session, session_key):
        await _answer(send, 403, b'{"detail": "Staff sign-in required."}')
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-cache, no-store"),
                (b"x-accel-buffering", b"no"),
                (b"x-content-type-options", b"nosniff"),
            ],
        }
    )
    disconnected = asyncio.Event()

    async def watch_disconnect() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        disconnected.set()

    watcher = asyncio.ensure_future(watch_disconnect())
    body = stream(hub)
    loop = asyncio.get_running_loop()
    checked = loop.time()
    try:
        while not disconnected.is_set():
            getter = asyncio.ensure_future(body.__anext__())
            waiter = asyncio.ensure_future(disconnected.wait())
            done, _ = await asyncio.wait({getter, waiter}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if getter not in done:
                getter.cancel()
                break
            await send({"type": "http.response.body", "body": getter.result().encode(), "more_body": True})
            if loop.time() - checked > REAUTH_SECONDS:
                checked = loop.time()
                if not await hub.run_db(_staff_session, session_key):
                    break
        if not disconnected.is_set():
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        watcher.cancel()
        await body.aclose()
