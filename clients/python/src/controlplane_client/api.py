"""Every SDK operation, written once as a plan (transport.py) and served by both `Client` and `AsyncClient`.

An `@operation` method of `Api` builds its calls (calls.py), reads their answers, falls back to the outage
cache and raises the typed errors; it performs no I/O. Read through a `Client`, the same attribute is a
plain method that drives the plan with blocking httpx; through an `AsyncClient`, a coroutine function
that drives it on the event loop. The few methods whose *answer type* differs between the two (a `Config`
whose `watch` is an iterator or an async iterator, a run handle whose `wait` blocks or is awaited,
context managers) are defined by each client in one line over a plan of this module.
"""

from __future__ import annotations

import functools
import inspect
import os
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar, overload

import httpx

from controlplane_client import calls
from controlplane_client.cache import NoCache, OutageCache, default_cache_dir
from controlplane_client.config import FATAL, Config, WatchState
from controlplane_client.errors import ControlPlaneError, Forbidden, NotFound, Unauthorized, Unavailable
from controlplane_client.models import Discovery, Instance, Run
from controlplane_client.transport import (
    Call,
    Endpoint,
    Plan,
    RetryBudget,
    RetryPolicy,
    Sleep,
    default_headers,
    exchange,
    normalize_base,
)

if TYPE_CHECKING:
    from controlplane_client.aclient import AsyncClient
    from controlplane_client.client import Client

DEFAULT_URL = "http://127.0.0.1:8000"
#: Answers that mean the key may not (or no longer) read a thing: its outage copy is dropped, not served.
_REFUSED = (Unauthorized, Forbidden, NotFound)

P = ParamSpec("P")
T = TypeVar("T")


def resolve_settings(base_url: str | None, api_key: str | None, watch_url: str | None) -> tuple[str, str | None, str]:
    """Arguments first, then CONTROLPLANE_URL / CONTROLPLANE_API_KEY / CONTROLPLANE_WATCH_URL, then the default."""
    base = normalize_base(base_url or os.environ.get("CONTROLPLANE_URL") or DEFAULT_URL)
    key = api_key or os.environ.get("CONTROLPLANE_API_KEY") or None
    watch = normalize_base(watch_url or os.environ.get("CONTROLPLANE_WATCH_URL") or base)
    return base, key, watch


def make_cache(
    cache_dir: Path | str | bool | None, base: str, key: str | None, max_stale: float | None = None
) -> OutageCache | NoCache:
    """The outage cache for one (server, key): `False` disables it, None/True is the user cache directory."""
    if cache_dir is False:
        return NoCache()
    root = default_cache_dir() if cache_dir in (None, True) else Path(cache_dir)  # type: ignore[arg-type]
    return OutageCache(root, base, key, max_age=max_stale)


class operation(Generic[P, T]):  # noqa: N801 - used as a decorator, like property
    """Turns a plan method of `Api` into a method of each client: sync on `Client`, a coroutine on `AsyncClient`.

    `Api.<name>.plan(client, ...)` is the plan itself, for code that composes operations (registration,
    balancer, run handles).
    """

    def __init__(self, plan: Callable[Concatenate[Any, P], Plan[T]]) -> None:
        self.plan = plan
        self.__doc__ = plan.__doc__
        self.__name__ = plan.__name__
        signature = inspect.signature(plan)
        self.__signature__ = signature.replace(parameters=list(signature.parameters.values())[1:])

    @overload
    def __get__(self, obj: None, owner: type) -> operation[P, T]: ...
    @overload
    def __get__(self, obj: Client, owner: type) -> Callable[P, T]: ...
    @overload
    def __get__(self, obj: AsyncClient, owner: type) -> Callable[P, Coroutine[Any, Any, T]]: ...
    def __get__(self, obj: Any, owner: type) -> Any:
        if obj is None:
            return self
        plan, drive = self.plan, obj._drive

        def bound(*args: Any, **kwargs: Any) -> Any:
            return drive(plan(obj, *args, **kwargs))

        bound.__doc__, bound.__name__, bound.__signature__ = self.__doc__, self.__name__, self.__signature__  # type: ignore[attr-defined]
        return bound


class bound(Generic[P, T]):  # noqa: N801 - used like a method
    """`name = bound(Helper)` in a client class: `client.name(...)` is `Helper(client, ...)`, with the
    helper's own signature, typed (registration contexts and balancers, one class per I/O style)."""

    def __init__(self, helper: Callable[Concatenate[Any, P], T]) -> None:
        self.helper = helper
        self.__doc__ = helper.__doc__

    @overload
    def __get__(self, obj: None, owner: type) -> bound[P, T]: ...
    @overload
    def __get__(self, obj: object, owner: type) -> Callable[P, T]: ...
    def __get__(self, obj: Any, owner: type) -> Any:
        return self if obj is None else functools.partial(self.helper, obj)


class Api:
    """What `Client` and `AsyncClient` share: settings, the outage cache, and every operation as a plan.

    `Client(base_url, api_key, *, timeout=10, retries=3, cache_dir=None)`: `base_url`/`api_key` default to
    `CONTROLPLANE_URL`/`CONTROLPLANE_API_KEY`; `watch_url` (default `CONTROLPLANE_WATCH_URL`, else
    `base_url`) is where long polls go when the watch server has its own address. `cache_dir` holds the
    outage cache (default: the user cache directory; `False` disables it); `max_stale` (seconds) refuses to
    answer an outage from a copy older than that. `retry_budget` may be shared by several clients;
    `http` is an httpx client (sync or async, as the client is) to send with instead of a new one.
    """

    _config_type: type[Config] = Config

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
        http: httpx.Client | httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url, self.api_key, self.watch_url = resolve_settings(base_url, api_key, watch_url)
        self.budget = retry_budget or RetryBudget()
        self.endpoint = Endpoint(self.base_url, self.watch_url, timeout, RetryPolicy(retries=retries), self.budget)
        self.cache = make_cache(cache_dir, self.base_url, self.api_key, max_stale)
        self._open(http, default_headers(self.api_key))

    def _open(self, http: Any, headers: dict[str, str]) -> None:
        raise NotImplementedError

    def _drive(self, plan: Plan[T]) -> Any:
        raise NotImplementedError

    # plumbing ----------------------------------------------------------------------------------------------
    def _send(self, call: Call, *, retries: int | None = None) -> Plan[httpx.Response]:
        return exchange(call, self.endpoint, retries=retries)

    def _json(self, call: Call) -> Plan[Any]:
        response = yield from self._send(call)
        return response.json() if response.content else None

    def _all(self, call: Call) -> Plan[list[Any]]:
        """Every page of a paginated list, following `next`."""
        body = yield from self._json(call)
        items = calls.results(body)
        while isinstance(body, dict) and body.get("next"):
            url = body["next"]
            body = yield from self._json(
                Call("GET", url.split("/api/v1", 1)[1] if "/api/v1" in url else url, retry=True)
            )
            items += calls.results(body)
        return items

    def _results(self, call: Call) -> Plan[list[Any]]:
        """The first page's `results` (or the list itself, for unpaginated answers)."""
        body = yield from self._json(call)
        return calls.results(body)

    def _done(self, call: Call) -> Plan[None]:
        yield from self._send(call)

    # registry ------------------------------------------------------------------------------------------------
    @operation
    def services(self, **filters: Any) -> Plan[list[dict[str, Any]]]:
        """Every service (filters: type, tag, capability, status, search)."""
        return self._all(calls.services_list(**filters))

    @operation
    def service(self, name: str) -> Plan[dict[str, Any]]:
        return self._json(calls.service_get(name))

    @operation
    def service_create(self, name: str, **fields: Any) -> Plan[dict[str, Any]]:
        return self._json(calls.service_create(name, fields))

    @operation
    def service_update(self, name: str, **fields: Any) -> Plan[dict[str, Any]]:
        return self._json(calls.service_update(name, fields))

    @operation
    def service_delete(self, name: str) -> Plan[None]:
        return self._done(calls.service_delete(name))

    @operation
    def instances(self, service: str) -> Plan[list[dict[str, Any]]]:
        return self._results(calls.instances_list(service))

    @operation
    def instance(self, service: str, instance_id: str) -> Plan[dict[str, Any]]:
        return self._json(calls.instance_get(service, instance_id))

    @operation
    def register(
        self,
        service: str,
        instance_id: str,
        address: str,
        port: int,
        *,
        checks: list[dict[str, Any]] | None = None,
        **fields: Any,
    ) -> Plan[dict[str, Any]]:
        """Register (upsert) an instance with its checks; `fields`: scheme, tags, metadata, deregister_critical_after."""
        body = {"instance_id": instance_id, "address": address, "port": port, "checks": checks or [], **fields}
        return self._json(calls.instance_register(service, body))

    @operation
    def deregister(self, service: str, instance_id: str) -> Plan[None]:
        return self._done(calls.instance_deregister(service, instance_id))

    @operation
    def heartbeat(
        self, service: str, instance_id: str, status: str = "passing", output: str = "", *, check: str | None = None
    ) -> Plan[list[dict[str, Any]]]:
        """Feed the instance's TTL check(s): passing, or warning/critical with an output."""
        return self._json(calls.heartbeat(service, instance_id, status, output, check))

    @operation
    def maintenance(
        self, service: str, instance_id: str, enabled: bool = True, reason: str = ""
    ) -> Plan[dict[str, Any]]:
        return self._json(calls.maintenance(service, instance_id, enabled, reason))

    @operation
    def discover(
        self, name: str, *, tag: str | list[str] | None = None, capability: str | None = None, status: str | None = None
    ) -> Plan[Discovery]:
        """Instances fit for traffic; from the outage cache (`stale=True`) when the control plane is down."""
        key = calls.discovery_key(name, tag, capability, status)
        try:
            response = yield from self._send(calls.discover(name, tag=tag, capability=capability, status=status))
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

    @operation
    def discover_wait(
        self,
        name: str,
        index: int,
        *,
        wait: float = 30.0,
        tag: str | list[str] | None = None,
        capability: str | None = None,
        status: str | None = None,
    ) -> Plan[Discovery]:
        """One blocking query: answers when the instance set changes past `index`, or after `wait`."""
        call = calls.discover(name, tag=tag, capability=capability, status=status, index=index, wait=wait)
        response = yield from self._send(call, retries=0)
        found, raw = calls.parse_discovery(name, response)
        self.cache.save("discovery", calls.discovery_key(name, tag, capability, status), raw, index=found.index or 0)
        return found

    # config -------------------------------------------------------------------------------------------------
    @operation
    def namespaces(self) -> Plan[list[dict[str, Any]]]:
        return self._all(calls.namespaces_list())

    @operation
    def namespace_create(self, name: str, description: str = "") -> Plan[dict[str, Any]]:
        return self._json(calls.namespace_create(name, description))

    def _config_read(self, namespace: str) -> Plan[Config]:
        """The effective config as a read-only Mapping with `.revision`; stale from the cache in an outage."""
        try:
            response = yield from self._send(calls.config_read(namespace))
        except _REFUSED:
            self.cache.drop("config", namespace)
            raise
        except Unavailable:
            cached = self.cache.load("config", namespace)
            if cached is None:
                raise
            data, index, age = cached
            return self._config_type(namespace, data, index, stale=True, age=age, client=self)  # type: ignore[arg-type]
        return self._config_fresh(namespace, response)

    def _config_fresh(self, namespace: str, response: httpx.Response) -> Config:
        data, index = response.json(), calls.config_index(response)
        self.cache.save("config", namespace, data, index=index)
        return self._config_type(namespace, data, index, client=self)  # type: ignore[arg-type]

    def _config_watch_once(self, namespace: str, index: int, wait: float) -> Plan[Config]:
        """One long poll of the namespace past `index` (no retries: the watch loop backs off itself)."""
        try:
            response = yield from self._send(calls.config_watch(namespace, index, wait), retries=0)
        except _REFUSED:
            self.cache.drop("config", namespace)
            raise
        return self._config_fresh(namespace, response)

    def _config_watch_step(self, namespace: str, state: WatchState) -> Plan[Config | None]:
        """One turn of a watch loop: a new revision, or None (the wait ran out, or an error was backed off)."""
        try:
            cfg = yield from self._config_watch_once(namespace, state.index, state.request_wait())
        except FATAL:
            raise
        except ControlPlaneError as error:
            yield Sleep(state.failed(error))
            return None
        return cfg if state.answered(cfg.revision) else None

    @operation
    def config_get(self, namespace: str, key: str) -> Plan[dict[str, Any]]:
        """One entry: value, winning layer, every layer, revision."""
        return self._json(calls.entry_get(namespace, key))

    @operation
    def config_put(
        self,
        namespace: str,
        key: str,
        value: Any,
        *,
        expected_revision: int | None = None,
        secret: bool | None = None,
        description: str | None = None,
    ) -> Plan[dict[str, Any]]:
        """Set a value; with `expected_revision` a compare-and-swap (0 = must not exist): PreconditionFailed if stale."""
        return self._json(
            calls.entry_put(
                namespace, key, value, secret=secret, description=description, expected_revision=expected_revision
            )
        )

    @operation
    def config_delete(self, namespace: str, key: str, *, expected_revision: int | None = None) -> Plan[None]:
        return self._done(calls.entry_delete(namespace, key, expected_revision=expected_revision))

    @operation
    def config_export(self, namespace: str, format: str = "yaml", *, prefix: str | None = None) -> Plan[str]:  # noqa: A002
        response = yield from self._send(calls.config_export(namespace, format, prefix))
        return response.text

    @operation
    def config_import(
        self,
        namespace: str,
        document: str | bytes,
        format: str = "yaml",  # noqa: A002
        *,
        replace: bool = False,
        allow_empty: bool = False,
    ) -> Plan[dict[str, Any]]:
        call = calls.config_import(namespace, document, format, replace=replace, allow_empty=allow_empty, message=None)
        return self._json(call)

    @operation
    def config_history(
        self, namespace: str, *, limit: int | None = None, offset: int | None = None
    ) -> Plan[list[dict[str, Any]]]:
        return self._results(calls.config_history(namespace, limit, offset))

    @operation
    def config_revision(self, namespace: str, number: int) -> Plan[dict[str, Any]]:
        return self._json(calls.config_revision(namespace, number))

    @operation
    def config_rollback(self, namespace: str, revision: int) -> Plan[dict[str, Any]]:
        return self._json(calls.config_rollback(namespace, revision))

    # pipelines -----------------------------------------------------------------------------------------------
    @operation
    def pipelines(self) -> Plan[list[dict[str, Any]]]:
        return self._all(calls.pipelines_list())

    @operation
    def pipeline(self, slug: str) -> Plan[dict[str, Any]]:
        return self._json(calls.pipeline_get(slug))

    @operation
    def pipeline_create(self, definition: dict[str, Any]) -> Plan[dict[str, Any]]:
        """Create a pipeline from its definition (`slug`, `name`, `steps`, ...; pipelines:write)."""
        return self._json(calls.pipeline_create(definition))

    @operation
    def run(
        self,
        slug: str,
        payload: Any,
        *,
        metadata: dict[str, Any] | None = None,
        tags: list[str] | None = None,
        trace: bool = False,
    ) -> Plan[dict[str, Any]]:
        """A synchronous run: the result packet, routes, trace and chained runs."""
        return self._json(calls.pipeline_run(slug, calls.packet(payload, metadata, tags), trace=trace))

    def _run_submit(
        self, slug: str, payload: Any, metadata: dict[str, Any] | None, tags: list[str] | None
    ) -> Plan[tuple[int, dict[str, Any]]]:
        body = yield from self._json(calls.pipeline_run(slug, calls.packet(payload, metadata, tags), run_async=True))
        return int(body["run_id"]), body

    def _run_wait(self, run_id: int, timeout: float, interval: float) -> Plan[Run]:
        """Poll a run until it ends, the interval doubling up to 1 s; TimeoutError past `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            run = yield from Api.get_run.plan(self, run_id)
            if run.done:
                return run
            if time.monotonic() >= deadline:
                raise TimeoutError(f"run {run_id} still {run.status} after {timeout} s")
            yield Sleep(min(interval, max(0.0, deadline - time.monotonic())))
            interval = min(interval * 2, 1.0)

    @operation
    def batch(self, slug: str, packets: list[Any]) -> Plan[dict[str, Any]]:
        """Up to 1,000 packets (`{"payload": ..., "metadata": ..., "tags": ...}` or bare payloads)."""
        items = [p if isinstance(p, dict) and "payload" in p else {"payload": p} for p in packets]
        return self._json(calls.pipeline_batch(slug, items))

    @operation
    def dry_run(
        self, slug: str, payload: Any, *, metadata: dict[str, Any] | None = None, tags: list[str] | None = None
    ) -> Plan[dict[str, Any]]:
        """Run the pipeline without keeping anything: its result and trace."""
        return self._json(calls.pipeline_dry_run(slug, calls.packet(payload, metadata, tags)))

    @operation
    def get_run(self, run_id: int) -> Plan[Run]:
        body = yield from self._json(calls.run_get(run_id))
        return calls.parse_run(body)

    # events and keys -----------------------------------------------------------------------------------------
    @operation
    def events(
        self, *, kind: str | None = None, since: int | None = None, subject: str | None = None, limit: int | None = None
    ) -> Plan[list[dict[str, Any]]]:
        """Events newest first; `since` = only events with a larger id."""
        return self._results(calls.events_list(kind=kind, since=since, subject=subject, limit=limit))

    @operation
    def keys(self) -> Plan[list[dict[str, Any]]]:
        return self._all(calls.keys_list())

    @operation
    def key_create(
        self,
        name: str,
        scopes: list[str],
        *,
        rate: str | None = None,
        namespaces: list[str] | None = None,
        expires_at: str | None = None,
    ) -> Plan[dict[str, Any]]:
        """Create an API key (admin scope); the answer's `key` is shown this once."""
        body = {"name": name, "scopes": scopes, "rate": rate, "namespaces": namespaces, "expires_at": expires_at}
        return self._json(calls.key_create({k: v for k, v in body.items() if v is not None}))

    @operation
    def key_revoke(self, prefix: str) -> Plan[dict[str, Any]]:
        return self._json(calls.key_revoke(prefix))
