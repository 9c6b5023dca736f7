"""`AsyncClient`: the asyncio SDK, with the methods of `Client` as coroutines over the same calls and models."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

import httpx

from controlplane_client import calls
from controlplane_client.balancer import Balancer
from controlplane_client.client import make_cache, resolve_settings
from controlplane_client.config import FATAL, Config, Debouncer, WatchState, changed_keys, relevant
from controlplane_client.errors import ControlPlaneError, Forbidden, NotFound, Unauthorized, Unavailable
from controlplane_client.models import Discovery, Instance, Run
from controlplane_client.registration import AsyncRegistration
from controlplane_client.transport import AsyncTransport, Call, RetryBudget, RetryPolicy

log = logging.getLogger("controlplane_client")
_REFUSED = (Unauthorized, Forbidden, NotFound)


class AsyncConfig(Config):
    """A `Config` bound to an `AsyncClient`: `watch()` is an async iterator, `on_change` runs as a task."""

    _client: AsyncClient  # type: ignore[assignment]

    async def watch(  # type: ignore[override]
        self, *, wait: float = 30.0, stop: asyncio.Event | None = None, max_backoff: float = 30.0
    ) -> AsyncIterator[AsyncConfig]:
        state = WatchState(self.revision, wait=wait, max_backoff=max_backoff)
        while stop is None or not stop.is_set():
            try:
                cfg = await self._client._config_watch_once(self.namespace, state.index, state.request_wait())
            except FATAL:
                raise
            except ControlPlaneError as error:
                await asyncio.sleep(state.failed(error))
                continue
            if state.answered(cfg.revision):
                yield cfg

    def on_change(
        self,
        callback: Callable[[Config, set[str]], Any],
        *,
        keys: Iterable[str] | None = None,  # type: ignore[override]
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


class AsyncClient:
    """Asynchronous client; same arguments and methods as `Client`, awaited."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        cache_dir: Path | str | bool | None = None,
        watch_url: str | None = None,
        retry_budget: RetryBudget | None = None,
        max_stale: float | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url, self.api_key, self.watch_url = resolve_settings(base_url, api_key, watch_url)
        self.budget = retry_budget or RetryBudget()
        self.transport = AsyncTransport(
            self.base_url,
            self.watch_url,
            self.api_key,
            timeout=timeout,
            policy=RetryPolicy(retries=retries),
            budget=self.budget,
            http=http,
        )
        self.cache = make_cache(cache_dir, self.base_url, self.api_key, max_stale)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.transport.close()

    async def _send(self, call: Call, **kwargs: Any) -> httpx.Response:
        return await self.transport.send(call, **kwargs)

    async def _json(self, call: Call) -> Any:
        response = await self._send(call)
        return response.json() if response.content else None

    async def _all(self, call: Call) -> list[Any]:
        body = await self._json(call)
        items = calls.results(body)
        while isinstance(body, dict) and body.get("next"):
            url = body["next"]
            body = await self._json(Call("GET", url.split("/api/v1", 1)[1] if "/api/v1" in url else url, retry=True))
            items += calls.results(body)
        return items

    # registry ------------------------------------------------------------------------------------------------
    async def services(self, **filters: Any) -> list[dict[str, Any]]:
        return await self._all(calls.services_list(**filters))

    async def service(self, name: str) -> dict[str, Any]:
        return await self._json(calls.service_get(name))

    async def service_create(self, name: str, **fields: Any) -> dict[str, Any]:
        return await self._json(calls.service_create(name, fields))

    async def service_update(self, name: str, **fields: Any) -> dict[str, Any]:
        return await self._json(calls.service_update(name, fields))

    async def service_delete(self, name: str) -> None:
        await self._send(calls.service_delete(name))

    async def instances(self, service: str) -> list[dict[str, Any]]:
        return calls.results(await self._json(calls.instances_list(service)))

    async def instance(self, service: str, instance_id: str) -> dict[str, Any]:
        return await self._json(calls.instance_get(service, instance_id))

    async def register(
        self,
        service: str,
        instance_id: str,
        address: str,
        port: int,
        *,
        checks: list[dict[str, Any]] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        body = {"instance_id": instance_id, "address": address, "port": port, "checks": checks or [], **fields}
        return await self._json(calls.instance_register(service, body))

    async def deregister(self, service: str, instance_id: str) -> None:
        await self._send(calls.instance_deregister(service, instance_id))

    async def heartbeat(
        self, service: str, instance_id: str, status: str = "passing", output: str = "", *, check: str | None = None
    ) -> list[dict[str, Any]]:
        return await self._json(calls.heartbeat(service, instance_id, status, output, check))

    async def maintenance(
        self, service: str, instance_id: str, enabled: bool = True, reason: str = ""
    ) -> dict[str, Any]:
        return await self._json(calls.maintenance(service, instance_id, enabled, reason))

    def registration(
        self,
        service: str,
        instance_id: str,
        address: str,
        port: int,
        *,
        checks: list[dict[str, Any]] | None = None,
        ttl: float | None = 10.0,
        deregister_on_sigterm: bool = False,
        **fields: Any,
    ) -> AsyncRegistration:
        """`async with aclient.registration(...)`: registers, heartbeats from a task, deregisters on exit."""
        return AsyncRegistration(
            self,
            service,
            instance_id,
            address,
            port,
            checks=checks,
            ttl=ttl,
            deregister_on_sigterm=deregister_on_sigterm,
            fields=fields,
        )

    async def discover(
        self, name: str, *, tag: str | list[str] | None = None, capability: str | None = None, status: str | None = None
    ) -> Discovery:
        key = calls.discovery_key(name, tag, capability, status)
        try:
            response = await self._send(calls.discover(name, tag=tag, capability=capability, status=status))
        except _REFUSED:
            self.cache.drop("discovery", key)
            raise
        except Unavailable:
            cached = self.cache.load("discovery", key)
            if cached is None:
                raise
            data, index, age = cached
            return Discovery(name, [Instance.from_json(i) for i in data], index=index, stale=True, age=age)
        found, raw = calls.parse_discovery(name, response)
        self.cache.save("discovery", key, raw, index=found.index or 0)
        return found

    async def discover_wait(
        self,
        name: str,
        index: int,
        *,
        wait: float = 30.0,
        tag: str | list[str] | None = None,
        capability: str | None = None,
        status: str | None = None,
    ) -> Discovery:
        response = await self._send(
            calls.discover(name, tag=tag, capability=capability, status=status, index=index, wait=wait), retries=0
        )
        found, raw = calls.parse_discovery(name, response)
        self.cache.save("discovery", calls.discovery_key(name, tag, capability, status), raw, index=found.index or 0)
        return found

    def balancer(self, name: str, strategy: str = "round_robin", **kwargs: Any) -> Balancer:
        """`async with aclient.balancer(name) as b:` follows the service with blocking queries in a task."""
        return Balancer(self, name, strategy=strategy, **kwargs)

    # config -------------------------------------------------------------------------------------------------
    async def namespaces(self) -> list[dict[str, Any]]:
        return await self._all(calls.namespaces_list())

    async def namespace_create(self, name: str, description: str = "") -> dict[str, Any]:
        return await self._json(calls.namespace_create(name, description))

    async def config(self, namespace: str) -> AsyncConfig:
        try:
            response = await self._send(calls.config_read(namespace))
        except _REFUSED:
            self.cache.drop("config", namespace)
            raise
        except Unavailable:
            cached = self.cache.load("config", namespace)
            if cached is None:
                raise
            data, index, age = cached
            return AsyncConfig(namespace, data, index, stale=True, age=age, client=self)  # type: ignore[arg-type]
        return self._config_fresh(namespace, response)

    def _config_fresh(self, namespace: str, response: httpx.Response) -> AsyncConfig:
        data, index = response.json(), calls.config_index(response)
        self.cache.save("config", namespace, data, index=index)
        return AsyncConfig(namespace, data, index, client=self)  # type: ignore[arg-type]

    async def _config_watch_once(self, namespace: str, index: int, wait: float) -> AsyncConfig:
        try:
            response = await self._send(calls.config_watch(namespace, index, wait), retries=0)
        except _REFUSED:
            self.cache.drop("config", namespace)
            raise
        return self._config_fresh(namespace, response)

    async def config_get(self, namespace: str, key: str) -> dict[str, Any]:
        return await self._json(calls.entry_get(namespace, key))

    async def config_put(
        self,
        namespace: str,
        key: str,
        value: Any,
        *,
        expected_revision: int | None = None,
        secret: bool | None = None,
        description: str | None = None,
    ) -> dict[str, Any]:
        return await self._json(
            calls.entry_put(
                namespace, key, value, secret=secret, description=description, expected_revision=expected_revision
            )
        )

    async def config_delete(self, namespace: str, key: str, *, expected_revision: int | None = None) -> None:
        await self._send(calls.entry_delete(namespace, key, expected_revision=expected_revision))

    async def config_export(self, namespace: str, format: str = "yaml", *, prefix: str | None = None) -> str:  # noqa: A002
        return (await self._send(calls.config_export(namespace, format, prefix))).text

    async def config_import(
        self,
        namespace: str,
        document: str | bytes,
        format: str = "yaml",
        *,  # noqa: A002
        replace: bool = False,
        allow_empty: bool = False,
    ) -> dict[str, Any]:
        return await self._json(
            calls.config_import(namespace, document, format, replace=replace, allow_empty=allow_empty, message=None)
        )

    async def config_history(
        self, namespace: str, *, limit: int | None = None, offset: int | None = None
    ) -> list[dict[str, Any]]:
        return calls.results(await self._json(calls.config_history(namespace, limit, offset)))

    async def config_revision(self, namespace: str, number: int) -> dict[str, Any]:
        return await self._json(calls.config_revision(namespace, number))

    async def config_rollback(self, namespace: str, revision: int) -> dict[str, Any]:
        return await self._json(calls.config_rollback(namespace, revision))

    # pipelines -----------------------------------------------------------------------------------------------
    async def pipelines(self) -> list[dict[str, Any]]:
        return await self._all(calls.pipelines_list())

    async def pipeline(self, slug: str) -> dict[str, Any]:
        return await self._json(calls.pipeline_get(slug))

    async def pipeline_create(self, definition: dict[str, Any]) -> dict[str, Any]:
        return await self._json(calls.pipeline_create(definition))

    async def run(
        self,
        slug: str,
        payload: Any,
        *,
        metadata: dict[str, Any] | None = None,
        tags: list[str] | None = None,
        trace: bool = False,
    ) -> dict[str, Any]:
        return await self._json(calls.pipeline_run(slug, calls.packet(payload, metadata, tags), trace=trace))

    async def run_async(
        self, slug: str, payload: Any, *, metadata: dict[str, Any] | None = None, tags: list[str] | None = None
    ) -> AsyncRunHandle:
        body = await self._json(calls.pipeline_run(slug, calls.packet(payload, metadata, tags), run_async=True))
        return AsyncRunHandle(self, int(body["run_id"]), body)

    async def batch(self, slug: str, packets: list[dict[str, Any]]) -> dict[str, Any]:
        items = [p if isinstance(p, dict) and "payload" in p else {"payload": p} for p in packets]
        return await self._json(calls.pipeline_batch(slug, items))

    async def dry_run(
        self, slug: str, payload: Any, *, metadata: dict[str, Any] | None = None, tags: list[str] | None = None
    ) -> dict[str, Any]:
        return await self._json(calls.pipeline_dry_run(slug, calls.packet(payload, metadata, tags)))

    async def get_run(self, run_id: int) -> Run:
        return calls.parse_run(await self._json(calls.run_get(run_id)))

    # events and keys -----------------------------------------------------------------------------------------
    async def events(
        self, *, kind: str | None = None, since: int | None = None, subject: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        return calls.results(await self._json(calls.events_list(kind=kind, since=since, subject=subject, limit=limit)))

    async def keys(self) -> list[dict[str, Any]]:
        return await self._all(calls.keys_list())

    async def key_create(
        self,
        name: str,
        scopes: list[str],
        *,
        rate: str | None = None,
        namespaces: list[str] | None = None,
        expires_at: str | None = None,
    ) -> dict[str, Any]:
        body = {"name": name, "scopes": scopes, "rate": rate, "namespaces": namespaces, "expires_at": expires_at}
        return await self._json(calls.key_create({k: v for k, v in body.items() if v is not None}))

    async def key_revoke(self, prefix: str) -> dict[str, Any]:
        return await self._json(calls.key_revoke(prefix))


class AsyncRunHandle:
    """An async run submitted through `AsyncClient.run_async`; `await handle.wait(timeout)`."""

    def __init__(self, client: AsyncClient, run_id: int, submitted: dict[str, Any]) -> None:
        self.client, self.id, self.submitted = client, run_id, submitted

    async def refresh(self) -> Run:
        return await self.client.get_run(self.id)

    async def wait(self, timeout: float = 30.0, *, interval: float = 0.1) -> Run:
        deadline = time.monotonic() + timeout
        while True:
            run = await self.refresh()
            if run.done:
                return run
            if time.monotonic() >= deadline:
                raise TimeoutError(f"run {self.id} still {run.status} after {timeout} s")
            await asyncio.sleep(min(interval, max(0.0, deadline - time.monotonic())))
            interval = min(interval * 2, 1.0)
