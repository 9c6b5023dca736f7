"""`Balancer`: picks an instance of a service — round robin, random, or least-recently-failed — over a
discovery answer kept current by blocking queries (`?index=N&wait=...`), not by polling.

A server that sends no `X-Registry-Index` does not support blocking discovery; the balancer then falls
back to re-reading every `poll_interval` seconds and says so once in the log.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from controlplane_client.api import Api
from controlplane_client.config import FATAL, WatchState
from controlplane_client.errors import ControlPlaneError, NotFound
from controlplane_client.models import Discovery, Instance
from controlplane_client.transport import Plan, Sleep

if TYPE_CHECKING:
    from controlplane_client.aclient import AsyncClient
    from controlplane_client.client import Client

log = logging.getLogger("controlplane_client")


class NoInstances(LookupError):
    """The service has no instance fit for traffic right now."""


class Strategy:
    """How to choose among the current instances; `failed` maps instance ids to their last failure time."""

    def choose(self, instances: Sequence[Instance], failed: dict[str, float]) -> Instance:
        raise NotImplementedError


class RoundRobin(Strategy):
    def __init__(self) -> None:
        self._counter = itertools.count()

    def choose(self, instances: Sequence[Instance], failed: dict[str, float]) -> Instance:
        return instances[next(self._counter) % len(instances)]


class Random(Strategy):
    def choose(self, instances: Sequence[Instance], failed: dict[str, float]) -> Instance:
        return random.choice(list(instances))


class LeastRecentlyFailed(Strategy):
    """Never-failed instances first (in turn), then the one whose last reported failure is oldest."""

    def __init__(self) -> None:
        self._counter = itertools.count()

    def choose(self, instances: Sequence[Instance], failed: dict[str, float]) -> Instance:
        healthy = [i for i in instances if i.instance_id not in failed]
        if healthy:
            return healthy[next(self._counter) % len(healthy)]
        return min(instances, key=lambda i: failed[i.instance_id])


STRATEGIES: dict[str, type[Strategy]] = {
    "round_robin": RoundRobin,
    "random": Random,
    "least_recently_failed": LeastRecentlyFailed,
}


class Balancer:
    """Use as a context manager (sync) or `async with` (async client): it follows the service until closed."""

    def __init__(
        self,
        client: Client | AsyncClient,
        name: str,
        strategy: str = "round_robin",
        *,
        tag: str | list[str] | None = None,
        capability: str | None = None,
        status: str | None = None,
        wait: float = 30.0,
        poll_interval: float = 5.0,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {sorted(STRATEGIES)}")
        self.client, self.name, self.wait, self.poll_interval = client, name, wait, poll_interval
        self.filters: dict[str, Any] = {"tag": tag, "capability": capability, "status": status}
        self.strategy = STRATEGIES[strategy]()
        self.discovery = Discovery(name, [])
        self.failed: dict[str, float] = {}
        self.changed = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None
        self._warned_no_index = False

    # choosing ----------------------------------------------------------------------------------------------
    @property
    def instances(self) -> Sequence[Instance]:
        return self.discovery.instances

    def pick(self) -> Instance:
        instances = self.discovery.instances
        if not instances:
            raise NoInstances(f"no instance of {self.name} is fit for traffic")
        return self.strategy.choose(instances, self.failed)

    def report_failure(self, instance: Instance | str) -> None:
        """The caller could not use `instance`: least-recently-failed avoids it until others failed later."""
        self.failed[instance if isinstance(instance, str) else instance.instance_id] = time.monotonic()

    def report_success(self, instance: Instance | str) -> None:
        self.failed.pop(instance if isinstance(instance, str) else instance.instance_id, None)

    def wait_for(self, predicate: Any, timeout: float) -> bool:
        """Block until `predicate(discovery)` is true (tests, start-up gates); False after `timeout`."""
        with self.changed:
            return self.changed.wait_for(lambda: predicate(self.discovery), timeout)

    def _update(self, found: Discovery) -> None:
        with self.changed:
            self.discovery = found
            ids = {i.instance_id for i in found}
            for gone in set(self.failed) - ids:
                del self.failed[gone]
            self.changed.notify_all()

    def _refused(self, error: ControlPlaneError) -> None:
        if isinstance(error, NotFound):  # the service was deleted: nothing is fit for traffic any more
            self._update(Discovery(self.name, []))
            log.warning("service %s is gone; the balancer stops following it", self.name)
        else:  # the key lost its access: keep the last answer rather than send traffic nowhere
            log.error("discovery of %s refused (%s); the balancer keeps its last answer", self.name, error)

    def _next_delay(self, found: Discovery, state: WatchState) -> float:
        if found.index is not None:
            return 0.0
        if not self._warned_no_index:
            log.warning(
                "server sent no X-Registry-Index: blocking discovery unsupported, polling every %ss", self.poll_interval
            )
            self._warned_no_index = True
        return self.poll_interval

    def _turn(self, state: WatchState) -> Plan[bool]:
        """One blocking query and what follows it; False once the service is gone or the key refused."""
        client = self.client
        try:
            found = yield from Api.discover_wait.plan(
                client, self.name, state.index, wait=state.request_wait(), **self.filters
            )
        except FATAL as error:
            self._refused(error)
            return False
        except ControlPlaneError as error:
            yield Sleep(state.failed(error))
            return True
        state.answered(found.index or 0)
        self._update(found)
        delay = self._next_delay(found, state)
        if delay:
            yield Sleep(delay)
        return True

    # sync following ----------------------------------------------------------------------------------------
    def start(self) -> Balancer:
        client: Client = self.client  # type: ignore[assignment]
        self._update(client.discover(self.name, **self.filters))
        self._thread = threading.Thread(target=self._follow, name=f"cp-balancer-{self.name}", daemon=True)
        self._thread.start()
        return self

    def _follow(self) -> None:
        client: Client = self.client  # type: ignore[assignment]
        state = WatchState(self.discovery.index or 0, wait=self.wait)
        while not self._stop.is_set() and client._drive(self._turn(state), sleep=self._stop.wait):
            pass

    def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()

    def __enter__(self) -> Balancer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # async following ---------------------------------------------------------------------------------------
    async def astart(self) -> Balancer:
        client: AsyncClient = self.client  # type: ignore[assignment]
        self._update(await client.discover(self.name, **self.filters))
        self._task = asyncio.get_running_loop().create_task(self._afollow())
        return self

    async def _afollow(self) -> None:
        client: AsyncClient = self.client  # type: ignore[assignment]
        state = WatchState(self.discovery.index or 0, wait=self.wait)
        while not self._stop.is_set() and await client._drive(self._turn(state)):
            pass

    async def __aenter__(self) -> Balancer:
        return await self.astart()

    async def __aexit__(self, *exc: object) -> None:
        self.stop()
