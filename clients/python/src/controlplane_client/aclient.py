"""`AsyncClient`: the asyncio SDK, an event-loop I/O shell over the same operations (api.py) as `Client`."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, TypeVar

import httpx

from controlplane_client.api import Api, bound
from controlplane_client.balancer import Balancer
from controlplane_client.config import Config, Debouncer, WatchState, changed_keys, relevant
from controlplane_client.models import Run
from controlplane_client.registration import AsyncRegistration
from controlplane_client.transport import Plan, adrive

log = logging.getLogger("controlplane_client")
T = TypeVar("T")


class AsyncConfig(Config):
    """A `Config` bound to an `AsyncClient`: `watch()` is an async iterator, `on_change` runs as a task."""

    _client: AsyncClient  # type: ignore[assignment]

    async def watch(  # type: ignore[override]
        self, *, wait: float = 30.0, stop: asyncio.Event | None = None, max_backoff: float = 30.0
    ) -> AsyncIterator[AsyncConfig]:
        """Every later revision of this namespace (the rules of `Config.watch`), until `stop` is set."""
        client = self._client
        state = WatchState(self.revision, wait=wait, max_backoff=max_backoff)
        while stop is None or not stop.is_set():
            cfg = await client._drive(client._config_watch_step(self.namespace, state))
            if cfg is not None:
                yield cfg  # type: ignore[misc]

    def on_change(  # type: ignore[override]
        self,
        callback: Callable[[Config, set[str]], Any],
        *,
        keys: Iterable[str] | None = None,
        debounce: float = 0.5,
        wait: float = 30.0,
    ) -> asyncio.Task[None]:
        """Start a task calling `callback(config, changed_keys)` (sync or async) after debounced changes."""
        wanted = list(keys) if keys is not None else None

        async def run() -> None:
            queue: asyncio.Queue[AsyncConfig] = asyncio.Queue()

            async def feed() -> None:
                async for cfg in self.watch(wait=wait):
                    await queue.put(cfg)

            feeder = asyncio.get_running_loop().create_task(feed())
            previous: Config = self
            debouncer, pending, latest = Debouncer(debounce), set[str](), previous
            try:
                while True:
                    remaining = debouncer.remaining()
                    try:
                        cfg = await asyncio.wait_for(queue.get(), remaining if remaining is not None else None)
                        changed = relevant(wanted, changed_keys(previous, cfg))
                        previous = cfg
                        if changed:
                            latest, pending = cfg, pending | changed
                            debouncer.add()
                    except TimeoutError:
                        pass
                    if feeder.done() and queue.empty() and not pending:
                        feeder.result()  # re-raise a fatal refusal
                    if debouncer.due():
                        keys_now, pending = pending, set()
                        debouncer.reset()
                        try:
                            result = callback(latest, keys_now)
                            if inspect.isawaitable(result):
                                await result
                        except Exception:
                            log.exception("config on_change callback failed")
            finally:
                feeder.cancel()

        return asyncio.get_running_loop().create_task(run())


class AsyncClient(Api):
    """Asynchronous client; the arguments of `Client` (see `Api`) and the same methods, awaited."""

    http: httpx.AsyncClient
    _config_type = AsyncConfig

    def _open(self, http: httpx.AsyncClient | None, headers: dict[str, str]) -> None:
        self.http = http or httpx.AsyncClient(headers=headers)

    async def _drive(self, plan: Plan[T]) -> T:
        return await adrive(self.http, plan)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def config(self, namespace: str) -> AsyncConfig:
        """The effective config as a read-only Mapping with `.revision`; stale from the cache in an outage."""
        return await self._drive(self._config_read(namespace))  # type: ignore[arg-type]

    async def run_async(
        self, slug: str, payload: Any, *, metadata: dict[str, Any] | None = None, tags: list[str] | None = None
    ) -> AsyncRunHandle:
        """Submit a run to the workers; `await handle.wait(timeout)` polls it to the end."""
        return AsyncRunHandle(self, *await self._drive(self._run_submit(slug, payload, metadata, tags)))

    #: `async with client.registration(service, instance_id, address, port, checks=[...], ttl=10):`
    #: registers, heartbeats a TTL check every ttl/3 s, deregisters on exit (see `AsyncRegistration`).
    registration = bound(AsyncRegistration)
    #: A `Balancer` over `discover(name, ...)`, kept current by blocking queries in a task.
    balancer = bound(Balancer)


class AsyncRunHandle:
    """An async run submitted through `AsyncClient.run_async`; `await handle.wait(timeout)`."""

    def __init__(self, client: AsyncClient, run_id: int, submitted: dict[str, Any]) -> None:
        self.client, self.id, self.submitted = client, run_id, submitted

    async def refresh(self) -> Run:
        return await self.client.get_run(self.id)

    async def wait(self, timeout: float = 30.0, *, interval: float = 0.1) -> Run:
        return await self.client._drive(self.client._run_wait(self.id, timeout, interval))
