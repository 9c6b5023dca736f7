"""`Client`: the synchronous SDK. Every method maps to one API call (built in calls.py) unless it says so."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from controlplane_client import calls
from controlplane_client.balancer import Balancer
from controlplane_client.cache import NoCache, OutageCache, default_cache_dir
from controlplane_client.config import Config
from controlplane_client.errors import Forbidden, NotFound, Unauthorized, Unavailable
from controlplane_client.models import Discovery, Instance, Run
from controlplane_client.registration import Registration
from controlplane_client.transport import Call, RetryBudget, RetryPolicy, SyncTransport, normalize_base

DEFAULT_URL = "http://127.0.0.1:8000"
_REFUSED = (Unauthorized, Forbidden, NotFound)


def resolve_settings(base_url: str | None, api_key: str | None, watch_url: str | None) -> tuple[str, str | None, str]:
    """Arguments first, then CONTROLPLANE_URL / CONTROLPLANE_API_KEY / CONTROLPLANE_WATCH_URL, then the default."""
    base = normalize_base(base_url or os.environ.get("CONTROLPLANE_URL") or DEFAULT_URL)
    key = api_key or os.environ.get("CONTROLPLANE_API_KEY") or None
    watch = normalize_base(watch_url or os.environ.get("CONTROLPLANE_WATCH_URL") or base)
    return base, key, watch


def make_cache(
    cache_dir: Path | str | bool | None, base: str, key: str | None, max_stale: float | None = None
) -> OutageCache | NoCache:
    if cache_dir is False:
        return NoCache()
    root = default_cache_dir() if cache_dir in (None, True) else Path(cache_dir)  # type: ignore[arg-type]
    return OutageCache(root, base, key, max_age=max_stale)


class Client:
    """Synchronous client. `Client(base_url, api_key, *, timeout=10, retries=3, cache_dir=None)`.

    `base_url`/`api_key` default to `CONTROLPLANE_URL`/`CONTROLPLANE_API_KEY`; `watch_url` (default
    `CONTROLPLANE_WATCH_URL`, else `base_url`) is where long polls go when the watch server has its own
    address. `cache_dir` holds the outage cache (default: the user cache directory; `False` disables it);
    `max_stale` (seconds) refuses to answer an outage from a copy older than that.
    """

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
        http: httpx.Client | None = None,
    ) -> None:
        self.base_url, self.api_key, self.watch_url = resolve_settings(base_url, api_key, watch_url)
        self.budget = retry_budget or RetryBudget()
        self.transport = SyncTransport(
            self.base_url,
            self.watch_url,
            self.api_key,
            timeout=timeout,
            policy=RetryPolicy(retries=retries),
            budget=self.budget,
            http=http,
        )
        self.cache = make_cache(cache_dir, self.base_url, self.api_key, max_stale)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.transport.close()

    # plumbing ----------------------------------------------------------------------------------------------
    def _send(self, call: Call, **kwargs: Any) -> httpx.Response:
        return self.transport.send(call, **kwargs)

    def _json(self, call: Call) -> Any:
        response = self._send(call)
        return response.json() if response.content else None

    def _all(self, call: Call) -> list[Any]:
        body = self._json(call)
        items = calls.results(body)
        while isinstance(body, dict) and body.get("next"):
            body = self._next(body["next"])
            items += calls.results(body)
        return items

    def _next(self, url: str) -> Any:
        path = url.split("/api/v1", 1)[1] if "/api/v1" in url else url
        return self._json(Call("GET", path, retry=True))

    # registry ------------------------------------------------------------------------------------------------
    def services(self, **filters: Any) -> list[dict[str, Any]]:
        """Every service (filters: type, tag, capability, status, search)."""
        return self._all(calls.services_list(**filters))

    def service(self, name: str) -> dict[str, Any]:
        return self._json(calls.service_get(name))

    def service_create(self, name: str, **fields: Any) -> dict[str, Any]:
        return self._json(calls.service_create(name, fields))

    def service_update(self, name: str, **fields: Any) -> dict[str, Any]:
        return self._json(calls.service_update(name, fields))

    def service_delete(self, name: str) -> None:
        self._send(calls.service_delete(name))

    def instances(self, service: str) -> list[dict[str, Any]]:
        return calls.results(self._json(calls.instances_list(service)))

    def instance(self, service: str, instance_id: str) -> dict[str, Any]:
        return self._json(calls.instance_get(service, instance_id))

    def register(
        self,
        service: str,
        instance_id: str,
        address: str,
        port: int,
        *,
        checks: list[dict[str, Any]] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Register (upsert) an instance with its checks; `fields`: scheme, tags, metadata, deregister_critical_after."""
        body = {"instance_id": instance_id, "address": address, "port": port, "checks": checks or [], **fields}
        return self._json(calls.instance_register(service, body))

    def deregister(self, service: str, instance_id: str) -> None:
        self._send(calls.instance_deregister(service, instance_id))

    def heartbeat(
        self, service: str, instance_id: str, status: str = "passing", output: str = "", *, check: str | None = None
    ) -> list[dict[str, Any]]:
        """Feed the instance's TTL check(s): passing, or warning/critical with an output."""
        return self._json(calls.heartbeat(service, instance_id, status, output, check))

    def maintenance(self, service: str, instance_id: str, enabled: bool = True, reason: str = "") -> dict[str, Any]:
        return self._json(calls.maintenance(service, instance_id, enabled, reason))

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
    ) -> Registration:
        """A context manager: registers, heartbeats a TTL check every ttl/3 s, deregisters on exit."""
        return Registration(
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

    def discover(
        self, name: str, *, tag: str | list[str] | None = None, capability: str | None = None, status: str | None = None
    ) -> Discovery:
        """Instances fit for traffic; from the outage cache (`stale=True`) when the control plane is down."""
        key = calls.discovery_key(name, tag, capability, status)
        try:
            found, raw = calls.parse_discovery(
                name, self._send(calls.discover(name, tag=tag, capability=capability, status=status))
            )
        except _REFUSED:
            self.cache.drop("discovery", key)
            raise
        except Unavailable:
            cached = self.cache.load("discovery", key)
            if cached is None:
                raise
            data, index, age = cached
            return Discovery(name, [Instance.from_json(i) for i in data], index=index, stale=True, age=age)
        self.cache.save("discovery", key, raw, index=found.index or 0)
        return found

    def discover_wait(
        self,
        name: str,
        index: int,
        *,
        wait: float = 30.0,
        tag: str | list[str] | None = None,
        capability: str | None = None,
        status: str | None = None,
    ) -> Discovery:
        """One blocking query: answers when the instance set changes past `index`, or after `wait`."""
        response = self._send(
            calls.discover(name, tag=tag, capability=capability, status=status, index=index, wait=wait), retries=0
        )
        found, raw = calls.parse_discovery(name, response)
        self.cache.save("discovery", calls.discovery_key(name, tag, capability, status), raw, index=found.index or 0)
        return found

    def balancer(self, name: str, strategy: str = "round_robin", **kwargs: Any) -> Balancer:
        """A `Balancer` over `discover(name, ...)`, kept current by blocking queries in a background thread."""
        return Balancer(self, name, strategy=strategy, **kwargs)

    # config -------------------------------------------------------------------------------------------------
    def namespaces(self) -> list[dict[str, Any]]:
        return self._all(calls.namespaces_list())

    def namespace_create(self, name: str, description: str = "") -> dict[str, Any]:
        return self._json(calls.namespace_create(name, description))

    def config(self, namespace: str) -> Config:
        """The effective config as a read-only Mapping with `.revision`; stale from the cache in an outage."""
        try:
            response = self._send(calls.config_read(namespace))
        except _REFUSED:
            self.cache.drop("config", namespace)
            raise
        except Unavailable:
            cached = self.cache.load("config", namespace)
            if cached is None:
                raise
            data, index, age = cached
            return Config(namespace, data, index, stale=True, age=age, client=self)
        return self._config_fresh(namespace, response)

    def _config_fresh(self, namespace: str, response: httpx.Response) -> Config:
        data, index = response.json(), calls.config_index(response)
        self.cache.save("config", namespace, data, index=index)
        return Config(namespace, data, index, client=self)

    def _config_watch_once(self, namespace: str, index: int, wait: float) -> Config:
        try:
            response = self._send(calls.config_watch(namespace, index, wait), retries=0)
        except _REFUSED:
            self.cache.drop("config", namespace)
            raise
        return self._config_fresh(namespace, response)

    def config_watch(self, namespace: str, *, wait: float = 30.0) -> Iterator[Config]:
        """Shortcut for `client.config(namespace).watch(wait=wait)`."""
        return self.config(namespace).watch(wait=wait)

    def config_get(self, namespace: str, key: str) -> dict[str, Any]:
        """One entry: value, winning layer, every layer, revision."""
        return self._json(calls.entry_get(namespace, key))

    def config_put(
        self,
        namespace: str,
        key: str,
        value: Any,
        *,
        expected_revision: int | None = None,
        secret: bool | None = None,
        description: str | None = None,
    ) -> dict[str, Any]:
        """Set a value; with `expected_revision` a compare-and-swap (0 = must not exist): PreconditionFailed if stale."""
        return self._json(
            calls.entry_put(
                namespace, key, value, secret=secret, description=description, expected_revision=expected_revision
            )
        )

    def config_delete(self, namespace: str, key: str, *, expected_revision: int | None = None) -> None:
        self._send(calls.entry_delete(namespace, key, expected_revision=expected_revision))

    def config_export(self, namespace: str, format: str = "yaml", *, prefix: str | None = None) -> str:  # noqa: A002
        return self._send(calls.config_export(namespace, format, prefix)).text

    def config_import(
        self,
        namespace: str,
        document: str | bytes,
        format: str = "yaml",
        *,  # noqa: A002
        replace: bool = False,
        allow_empty: bool = False,
    ) -> dict[str, Any]:
        return self._json(
            calls.config_import(namespace, document, format, replace=replace, allow_empty=allow_empty, message=None)
        )

    def config_history(
        self, namespace: str, *, limit: int | None = None, offset: int | None = None
    ) -> list[dict[str, Any]]:
        return calls.results(self._json(calls.config_history(namespace, limit, offset)))

    def config_revision(self, namespace: str, number: int) -> dict[str, Any]:
        return self._json(calls.config_revision(namespace, number))

    def config_rollback(self, namespace: str, revision: int) -> dict[str, Any]:
        return self._json(calls.config_rollback(namespace, revision))

    # pipelines -----------------------------------------------------------------------------------------------
    def pipelines(self) -> list[dict[str, Any]]:
        return self._all(calls.pipelines_list())

    def pipeline(self, slug: str) -> dict[str, Any]:
        return self._json(calls.pipeline_get(slug))

    def pipeline_create(self, definition: dict[str, Any]) -> dict[str, Any]:
        """Create a pipeline from its definition (`slug`, `name`, `steps`, ...; pipelines:write)."""
        return self._json(calls.pipeline_create(definition))

    def run(
        self,
        slug: str,
        payload: Any,
        *,
        metadata: dict[str, Any] | None = None,
        tags: list[str] | None = None,
        trace: bool = False,
    ) -> dict[str, Any]:
        """A synchronous run: the result packet, routes, trace and chained runs."""
        return self._json(calls.pipeline_run(slug, calls.packet(payload, metadata, tags), trace=trace))

    def run_async(
        self, slug: str, payload: Any, *, metadata: dict[str, Any] | None = None, tags: list[str] | None = None
    ) -> RunHandle:
        """Submit a run to the workers; `.wait(timeout)` polls it to the end."""
        body = self._json(calls.pipeline_run(slug, calls.packet(payload, metadata, tags), run_async=True))
        return RunHandle(self, int(body["run_id"]), body)

    def batch(self, slug: str, packets: list[dict[str, Any]]) -> dict[str, Any]:
        """Up to 1,000 packets (`{"payload": ..., "metadata": ..., "tags": ...}` or bare payloads)."""
        items = [p if isinstance(p, dict) and "payload" in p else {"payload": p} for p in packets]
        return self._json(calls.pipeline_batch(slug, items))

    def dry_run(
        self, slug: str, payload: Any, *, metadata: dict[str, Any] | None = None, tags: list[str] | None = None
    ) -> dict[str, Any]:
        return self._json(calls.pipeline_dry_run(slug, calls.packet(payload, metadata, tags)))

    def get_run(self, run_id: int) -> Run:
        return calls.parse_run(self._json(calls.run_get(run_id)))

    # events and keys -----------------------------------------------------------------------------------------
    def events(
        self, *, kind: str | None = None, since: int | None = None, subject: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Events newest first; `since` = only events with a larger id."""
        return calls.results(self._json(calls.events_list(kind=kind, since=since, subject=subject, limit=limit)))

    def keys(self) -> list[dict[str, Any]]:
        return self._all(calls.keys_list())

    def key_create(
        self,
        name: str,
        scopes: list[str],
        *,
        rate: str | None = None,
        namespaces: list[str] | None = None,
        expires_at: str | None = None,
    ) -> dict[str, Any]:
        """Create an API key (admin scope); the answer's `key` is shown this once."""
        body = {"name": name, "scopes": scopes, "rate": rate, "namespaces": namespaces, "expires_at": expires_at}
        return self._json(calls.key_create({k: v for k, v in body.items() if v is not None}))

    def key_revoke(self, prefix: str) -> dict[str, Any]:
        return self._json(calls.key_revoke(prefix))


class RunHandle:
    """An async run: `.id`, `.refresh()`, `.wait(timeout)` -> the finished `Run` (TimeoutError past `timeout`)."""

    def __init__(self, client: Client, run_id: int, submitted: dict[str, Any]) -> None:
        self.client, self.id, self.submitted = client, run_id, submitted

    def refresh(self) -> Run:
        return self.client.get_run(self.id)

    def wait(self, timeout: float = 30.0, *, interval: float = 0.1) -> Run:
        deadline = time.monotonic() + timeout
        while True:
            run = self.refresh()
            if run.done:
                return run
            if time.monotonic() >= deadline:
                raise TimeoutError(f"run {self.id} still {run.status} after {timeout} s")
            time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
            interval = min(interval * 2, 1.0)
