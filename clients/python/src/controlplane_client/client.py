"""`Client`: the synchronous SDK, a blocking I/O shell over the operations of api.py."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx

from controlplane_client.api import Api, bound, make_cache, resolve_settings
from controlplane_client.balancer import Balancer
from controlplane_client.config import Config
from controlplane_client.models import Run
from controlplane_client.registration import Registration
from controlplane_client.transport import Plan, drive

__all__ = ["Client", "RunHandle", "make_cache", "resolve_settings"]

T = TypeVar("T")


class Client(Api):
    """Synchronous client. `Client(base_url, api_key, *, timeout=10, retries=3, cache_dir=None)`.

    Every method of `Api` is a blocking method here; see `Api` for the arguments.
    """

    http: httpx.Client

    def _open(self, http: httpx.Client | None, headers: dict[str, str]) -> None:
        self.http = http or httpx.Client(headers=headers)

    def _drive(self, plan: Plan[T], sleep: Callable[[float], Any] = time.sleep) -> T:
        return drive(self.http, plan, sleep)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def config(self, namespace: str) -> Config:
        """The effective config as a read-only Mapping with `.revision`; stale from the cache in an outage."""
        return self._drive(self._config_read(namespace))

    def config_watch(self, namespace: str, *, wait: float = 30.0) -> Iterator[Config]:
        """Shortcut for `client.config(namespace).watch(wait=wait)`."""
        return self.config(namespace).watch(wait=wait)

    def run_async(
        self, slug: str, payload: Any, *, metadata: dict[str, Any] | None = None, tags: list[str] | None = None
    ) -> RunHandle:
        """Submit a run to the workers; `.wait(timeout)` polls it to the end."""
        return RunHandle(self, *self._drive(self._run_submit(slug, payload, metadata, tags)))

    #: `with client.registration(service, instance_id, address, port, checks=[...], ttl=10):`
    #: registers, heartbeats a TTL check every ttl/3 s, deregisters on exit (see `Registration`).
    registration = bound(Registration)
    #: A `Balancer` over `discover(name, ...)`, kept current by blocking queries in a background thread.
    balancer = bound(Balancer)


class RunHandle:
    """An async run: `.id`, `.refresh()`, `.wait(timeout)` -> the finished `Run` (TimeoutError past `timeout`)."""

    def __init__(self, client: Client, run_id: int, submitted: dict[str, Any]) -> None:
        self.client, self.id, self.submitted = client, run_id, submitted

    def refresh(self) -> Run:
        return self.client.get_run(self.id)

    def wait(self, timeout: float = 30.0, *, interval: float = 0.1) -> Run:
        return self.client._drive(self.client._run_wait(self.id, timeout, interval))
