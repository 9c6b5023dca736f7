"""What a request is (`Call`), when to retry it (`RetryPolicy` + `RetryBudget`), and how a plan is run.

The SDK is sans-io: every operation is a *plan*, a generator that yields effects (`Send` a request,
`Sleep` a while) and is sent back the answers; `exchange` is the plan of one call with its retries. The
plans are written once (api.py); `drive` (sync, httpx.Client) and `adrive` (asyncio, httpx.AsyncClient)
are the only code that performs I/O, so the two clients cannot drift apart in what they send or decide.

Retries: exponential backoff with full jitter, `Retry-After` honoured, only for calls marked `retry`
(idempotent reads and writes, and compare-and-swap writes, which cannot apply twice). A connection that
could not be made, or a 429, means the server never acted on the request, so those are retried for any
call. A per-client `RetryBudget` (a token bucket filled by successes) caps retries at a fraction of the
traffic: when the control plane is down, each client tries a few times and then fails fast instead of
multiplying its load.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from controlplane_client import __version__
from controlplane_client.errors import (
    ConnectionFailed,
    ControlPlaneError,
    RateLimited,
    Unavailable,
    error_from_response,
)

API_PREFIX = "/api/v1"
_UNSET: Any = object()


@dataclass
class Call:
    """One API request: method, path under /api/v1, and whether a retry is safe (`retry`)."""

    method: str
    path: str
    params: Any = None
    json: Any = _UNSET
    content: bytes | str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    retry: bool = False
    watch: bool = False  # a long poll: sent to the watch URL with a read timeout past its wait
    timeout: float | None = None
    ok_statuses: tuple[int, ...] = ()  # non-2xx answers that are not errors (304)


class RetryBudget:
    """A token bucket shared by every call of one client: each retry takes a token, each success adds `ratio`.

    With the defaults a client that has been healthy may retry up to 10 times in a row, and then about
    one retry per 10 successful calls: an outage costs each client a handful of retries, not a storm.
    """

    def __init__(self, *, capacity: float = 10.0, ratio: float = 0.1) -> None:
        self.capacity = capacity
        self.ratio = ratio
        self._tokens = capacity
        self._lock = threading.Lock()

    def success(self) -> None:
        with self._lock:
            self._tokens = min(self.capacity, self._tokens + self.ratio)

    def take(self) -> bool:
        with self._lock:
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False

    @property
    def tokens(self) -> float:
        return self._tokens


@dataclass
class RetryPolicy:
    """How many times and how long to wait: attempt n sleeps uniform(0, min(cap, base * 2**n))."""

    retries: int = 3
    backoff: float = 0.2
    max_backoff: float = 10.0
    max_retry_after: float = 30.0  # a longer Retry-After is returned to the caller, not slept through

    def delay(self, attempt: int, error: ControlPlaneError) -> float:
        ceiling = min(self.max_backoff, self.backoff * (2**attempt))
        delay = random.uniform(0, ceiling)
        advised = getattr(error, "retry_after", None)
        if advised is not None:
            # The server's advice is a floor; a little jitter keeps clients that got the same answer apart.
            delay = advised + random.uniform(0, min(1.0, advised * 0.1 + 0.05))
        return delay


def should_retry(
    call: Call, error: ControlPlaneError, attempt: int, policy: RetryPolicy, budget: RetryBudget
) -> float | None:
    """Seconds to sleep before the next attempt, or None to raise `error` now."""
    if attempt >= policy.retries:
        return None
    never_sent = isinstance(error, ConnectionFailed) and isinstance(error.__cause__, httpx.ConnectError)
    if isinstance(error, RateLimited) or never_sent:
        pass  # the server did not act on the request: safe for any call
    elif not (call.retry and isinstance(error, Unavailable)):
        return None
    advised = getattr(error, "retry_after", None)
    if advised is not None and advised > policy.max_retry_after:
        return None
    if not budget.take():
        return None
    return policy.delay(attempt, error)


def normalize_base(url: str) -> str:
    """`http://host:8000`, `http://host:8000/` and `http://host:8000/api/v1` all mean the same server."""
    url = url.rstrip("/")
    if url.endswith(API_PREFIX):
        url = url[: -len(API_PREFIX)]
    return url


def default_headers(api_key: str | None) -> dict[str, str]:
    headers = {"User-Agent": f"controlplane-client/{__version__}", "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Api-Key {api_key}"
    return headers


def request_kwargs(call: Call, base: str, watch_base: str, timeout: float) -> dict[str, Any]:
    """The keyword arguments of `httpx.Client.request` for `call` (the same for the async client)."""
    kwargs: dict[str, Any] = {
        "method": call.method,
        "url": (watch_base if call.watch else base) + API_PREFIX + call.path,
        "params": call.params,
        "headers": call.headers,
        "timeout": call.timeout if call.timeout is not None else timeout,
    }
    if call.json is not _UNSET:
        kwargs["json"] = call.json
    elif call.content is not None:
        kwargs["content"] = call.content
    return kwargs


def _check(response: httpx.Response, call: Call) -> httpx.Response:
    if response.is_success or response.status_code in call.ok_statuses:
        return response
    raise error_from_response(response)


def _connection_error(exc: httpx.TransportError) -> ConnectionFailed:
    error = ConnectionFailed(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, title="No answer")
    error.__cause__ = exc
    return error


# Effects and plans ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Send:
    """Effect: send this request (`httpx.Client.request(**request)`); the answer, or the httpx.TransportError
    thrown in, comes back to the plan."""

    request: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Sleep:
    """Effect: wait `seconds` (a retry's backoff, a watch's pause after an error, a run's poll interval)."""

    seconds: float


T = TypeVar("T")
Effect = Send | Sleep
#: A sans-io operation: yields effects, is sent their results, returns its answer.
Plan = Generator[Effect, Any, T]


@dataclass
class Endpoint:
    """Where and how one client sends its calls: the two base URLs, the default timeout, retry rules, budget."""

    base: str
    watch_base: str
    timeout: float
    policy: RetryPolicy
    budget: RetryBudget


def exchange(call: Call, endpoint: Endpoint, *, retries: int | None = None) -> Plan[httpx.Response]:
    """The plan of one call: send it, turn a failed answer into its typed error, retry while that is safe."""
    policy = endpoint.policy
    if retries is not None:
        policy = RetryPolicy(retries, policy.backoff, policy.max_backoff, policy.max_retry_after)
    request = request_kwargs(call, endpoint.base, endpoint.watch_base, endpoint.timeout)
    attempt = 0
    while True:
        try:
            try:
                response = yield Send(request)
            except httpx.TransportError as exc:
                raise _connection_error(exc) from exc
            response = _check(response, call)
            endpoint.budget.success()
            return response
        except ControlPlaneError as error:
            delay = should_retry(call, error, attempt, policy, endpoint.budget)
            if delay is None:
                raise
            yield Sleep(delay)
            attempt += 1


class Stepper:
    """Advances a plan: `next()` is its next effect (None once it returned, its answer then in `value`);
    set `reply` or `error` to what the effect gave before calling `next()` again."""

    __slots__ = ("plan", "reply", "error", "value")

    def __init__(self, plan: Plan[Any]) -> None:
        self.plan = plan
        self.reply: Any = None
        self.error: BaseException | None = None
        self.value: Any = None

    def next(self) -> Effect | None:
        try:
            if self.error is None:
                effect = self.plan.send(self.reply)
            else:
                effect = self.plan.throw(self.error)
        except StopIteration as done:
            self.value = done.value
            return None
        self.reply = self.error = None
        return effect


def drive(http: httpx.Client, plan: Plan[T], sleep: Callable[[float], Any] = time.sleep) -> T:
    """Run `plan` with blocking I/O. `sleep` may be a `threading.Event().wait` so a stop cuts a pause short."""
    run = Stepper(plan)
    while (effect := run.next()) is not None:
        if isinstance(effect, Sleep):
            sleep(effect.seconds)
            continue
        try:
            run.reply = http.request(**effect.request)
        except httpx.TransportError as exc:
            run.error = exc
    return run.value  # type: ignore[no-any-return]


async def adrive(http: httpx.AsyncClient, plan: Plan[T]) -> T:
    """Run `plan` on the running event loop (cancellation closes the plan at the effect it waits on)."""
    run = Stepper(plan)
    while (effect := run.next()) is not None:
        if isinstance(effect, Sleep):
            await asyncio.sleep(effect.seconds)
            continue
        try:
            run.reply = await http.request(**effect.request)
        except httpx.TransportError as exc:
            run.error = exc
    return run.value  # type: ignore[no-any-return]
