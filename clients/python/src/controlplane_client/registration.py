"""`Registration`: register an instance for the life of a `with` block, heartbeating its TTL check.

Entering registers the instance (creating the service first if it does not exist) with the caller's
checks plus a TTL check named `ttl`; a background thread (or asyncio task) feeds that check every ttl/3
seconds with the status the application last reported (`passing()`, `warning(output)`,
`critical(output)`); leaving the block deregisters. With `deregister_on_sigterm=True`, SIGTERM ends the
block (SystemExit 143) so the instance is deregistered before the process exits; a process killed with
SIGKILL stops heartbeating and its instance turns critical when the TTL lapses.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from typing import TYPE_CHECKING, Any

from controlplane_client.api import Api
from controlplane_client.errors import ControlPlaneError, NotFound
from controlplane_client.transport import Plan

if TYPE_CHECKING:
    from controlplane_client.aclient import AsyncClient
    from controlplane_client.client import Client

log = logging.getLogger("controlplane_client")
TTL_CHECK = "ttl"


class _Base:
    """What both registration contexts share: the checks, the reported status, and the plans they drive."""

    def __init__(
        self,
        client: Client | AsyncClient,
        service: str,
        instance_id: str,
        address: str,
        port: int,
        *,
        checks: list[dict[str, Any]] | None = None,
        ttl: float | None = 10.0,
        deregister_on_sigterm: bool = False,
        **fields: Any,
    ) -> None:
        """`checks` are registered with the instance, plus a TTL check named `ttl` unless `ttl` is None;
        `fields` are the registration's other fields (scheme, tags, metadata, deregister_critical_after)."""
        self.client, self.service, self.instance_id = client, service, instance_id
        self.address, self.port, self.ttl, self.fields = address, port, ttl, fields
        self.checks = list(checks or [])
        if ttl is not None:
            self.checks.append({"name": TTL_CHECK, "kind": "ttl", "ttl": ttl})
        self.deregister_on_sigterm = deregister_on_sigterm
        self.status, self.output = "passing", ""
        self.heartbeats = 0
        self.last_error: ControlPlaneError | None = None
        self.registered: dict[str, Any] | None = None
        self._previous_handler: Any = None
        self._setup()

    def _setup(self) -> None:
        """The heartbeat loop's own state (threading or asyncio)."""

    @property
    def interval(self) -> float:
        return max(0.2, (self.ttl or 30.0) / 3)

    def passing(self, output: str = "") -> None:
        self._report("passing", output)

    def warning(self, output: str) -> None:
        self._report("warning", output)

    def critical(self, output: str) -> None:
        self._report("critical", output)

    def _report(self, status: str, output: str) -> None:
        self.status, self.output = status, output
        self._wake()

    def _wake(self) -> None:
        raise NotImplementedError

    # plans -------------------------------------------------------------------------------------------------
    def _register(self) -> Plan[None]:
        """Register the instance, creating its service first when the registry does not know it yet."""
        register = Api.register.plan
        args = (self.client, self.service, self.instance_id, self.address, self.port)
        try:
            self.registered = yield from register(*args, checks=self.checks, **self.fields)
        except NotFound:
            yield from Api.service_create.plan(self.client, self.service)
            self.registered = yield from register(*args, checks=self.checks, **self.fields)

    def _beat(self) -> Plan[None]:
        """Feed the TTL check with the last reported status; a failure is logged and the next beat tried."""
        try:
            yield from Api.heartbeat.plan(
                self.client, self.service, self.instance_id, self.status, self.output, check=TTL_CHECK
            )
            self.heartbeats += 1
            self.last_error = None
        except ControlPlaneError as error:  # keep beating: the next one may get through before the TTL lapses
            self.last_error = error
            log.warning("heartbeat of %s/%s failed: %s", self.service, self.instance_id, error)

    def _deregister(self) -> Plan[None]:
        try:
            yield from Api.deregister.plan(self.client, self.service, self.instance_id)
        except NotFound:
            pass  # already gone (an operator, or deregister_critical_after)

    # SIGTERM -----------------------------------------------------------------------------------------------
    def _install_sigterm(self) -> None:
        if not self.deregister_on_sigterm or threading.current_thread() is not threading.main_thread():
            return

        def on_sigterm(signum: int, frame: Any) -> None:
            # Unwind the with block (its exit deregisters), then leave as a process killed by SIGTERM does.
            raise SystemExit(128 + signum)

        self._previous_handler = signal.signal(signal.SIGTERM, on_sigterm)

    def _restore_sigterm(self) -> None:
        if self._previous_handler is not None:
            signal.signal(signal.SIGTERM, self._previous_handler)
            self._previous_handler = None


class Registration(_Base):
    """The synchronous registration context (`client.registration(...)`): heartbeats from a daemon thread."""

    client: Client

    def _setup(self) -> None:
        self._stop = threading.Event()
        self._now = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Registration:
        self.client._drive(self._register())
        self._install_sigterm()
        if self.ttl is not None:
            self.client._drive(self._beat())  # passing at once, not one interval later
            self._thread = threading.Thread(target=self._run, name=f"cp-heartbeat-{self.instance_id}", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self._now.wait(self.interval)
            self._now.clear()
            if not self._stop.is_set():
                self.client._drive(self._beat())

    def _wake(self) -> None:
        self._now.set()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._now.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._restore_sigterm()
        self.client._drive(self._deregister())


class AsyncRegistration(_Base):
    """The asyncio registration context (`async with aclient.registration(...)`): heartbeats from a task."""

    client: AsyncClient

    def _setup(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._now: asyncio.Event | None = None

    async def __aenter__(self) -> AsyncRegistration:
        await self.client._drive(self._register())
        self._install_sigterm()
        if self.ttl is not None:
            self._now = asyncio.Event()
            await self.client._drive(self._beat())
            self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def _run(self) -> None:
        assert self._now is not None
        while True:
            try:
                await asyncio.wait_for(self._now.wait(), self.interval)
            except TimeoutError:
                pass
            self._now.clear()
            await self.client._drive(self._beat())

    def _wake(self) -> None:
        if self._now is not None:
            self._now.set()

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._restore_sigterm()
        await self.client._drive(self._deregister())
