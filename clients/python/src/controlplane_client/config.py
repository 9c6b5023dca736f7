"""`Config`: a read-only Mapping of a namespace's effective config, with typed getters, watch and on_change.

The watch loop's rules live in `WatchState` (pure, shared by the sync and async iterators): long-poll with
the last index and a jittered `wait`; an answer whose index went backwards (the namespace was recreated,
the database restored) is taken as the new state rather than waited past; errors back off exponentially
with jitter and never end the watch unless the key may no longer read the namespace.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from controlplane_client.errors import ControlPlaneError, Forbidden, NotFound, RateLimited, Unauthorized

if TYPE_CHECKING:
    from controlplane_client.client import Client

log = logging.getLogger("controlplane_client")

_MISSING: Any = object()
_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f", ""}
#: Errors that end a watch: the key may no longer read the namespace, waiting will not change that.
FATAL = (Unauthorized, Forbidden, NotFound)


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"db": {"port": 1}}` -> `{"db.port": 1}` (leaves only)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def changed_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> set[str]:
    """Dotted keys added, removed or changed between two nested mappings."""
    a, b = flatten(old), flatten(new)
    return {k for k in a.keys() | b.keys() if a.get(k, _MISSING) != b.get(k, _MISSING)}


def relevant(keys: Iterable[str] | None, changed: set[str]) -> set[str]:
    """The changed keys a watcher of `keys` is told about (all of them when `keys` is None)."""
    if keys is None:
        return set(changed)
    wanted = list(keys)
    return {c for c in changed if matches(wanted, {c})}


def matches(keys: Iterable[str] | None, changed: set[str]) -> bool:
    """Does a change touch `keys`? A key matches itself and everything under it (`db` covers `db.port`)."""
    if keys is None:
        return bool(changed)
    wanted = list(keys)
    return any(c == k or c.startswith(k + ".") or k.startswith(c + ".") for c in changed for k in wanted)


class Config(Mapping[str, Any]):
    """The effective config of `namespace` at `revision`: nested and dotted access, never mutable.

    `stale` is True when the answer came from the outage cache (the control plane could not be reached),
    and `age` is then how old that copy is, in seconds; a fresh answer has `stale == False`, `age == 0`.
    """

    def __init__(
        self,
        namespace: str,
        data: dict[str, Any],
        revision: int,
        *,
        stale: bool = False,
        age: float = 0.0,
        client: Client | None = None,
    ) -> None:
        self.namespace = namespace
        self.revision = revision
        self.stale = stale
        self.age = age
        self._raw = data
        self._data: Mapping[str, Any] = _freeze(data)
        self._client = client

    # Mapping ---------------------------------------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        if key in self._data:
            return self._data[key]
        node: Any = self._data
        for part in key.split("."):
            if not isinstance(node, Mapping) or part not in node:
                raise KeyError(key)
            node = node[part]
        return node

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        try:
            self[key]
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        state = f" stale age={self.age:.0f}s" if self.stale else ""
        return f"<Config {self.namespace} revision={self.revision}{state} keys={list(self._data)}>"

    # Typed getters ---------------------------------------------------------------------------------------
    def get_str(self, key: str, default: str | None = None) -> str | None:
        value = self.get(key, _MISSING)
        if value is _MISSING or value is None:
            return default
        return value if isinstance(value, str) else str(value)

    def get_int(self, key: str, default: int | None = None) -> int | None:
        value = self.get(key, _MISSING)
        if value is _MISSING or value is None or isinstance(value, bool):
            return default
        try:
            return int(value)
        except (TypeError, ValueError):
            return default

    def get_bool(self, key: str, default: bool | None = None) -> bool | None:
        value = self.get(key, _MISSING)
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float):
            return bool(value)
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
        return default

    def to_dict(self) -> dict[str, Any]:
        """A mutable deep copy, nested as the server sent it."""
        import copy

        return copy.deepcopy(self._raw)

    def flat(self) -> dict[str, Any]:
        """Dotted keys to leaf values (`db.port` -> 5432)."""
        return flatten(self._raw)

    # Watching --------------------------------------------------------------------------------------------
    def watch(
        self, *, wait: float = 30.0, stop: threading.Event | None = None, max_backoff: float = 30.0
    ) -> Iterator[Config]:
        """Yield every later revision of this namespace, forever (or until `stop` is set).

        Survives control-plane restarts and outages (retries with backoff); ends with the exception only
        when the key may no longer read the namespace (401/403/404).
        """
        client = self._require_client()
        state = WatchState(self.revision, wait=wait, max_backoff=max_backoff)
        stop = stop or threading.Event()
        while not stop.is_set():
            cfg = client._drive(client._config_watch_step(self.namespace, state), sleep=stop.wait)
            if cfg is not None:
                yield cfg

    def on_change(
        self,
        callback: Callable[[Config, set[str]], Any],
        *,
        keys: Iterable[str] | None = None,
        debounce: float = 0.5,
        wait: float = 30.0,
    ) -> Watcher:
        """Call `callback(config, changed_keys)` from a background thread after each change touching `keys`.

        Changes within `debounce` seconds of each other are delivered once, with the last config and the
        union of their keys (only the keys that match `keys`). Returns the running `Watcher`; `.stop()` ends it.
        """
        watcher = Watcher(self, callback, keys=list(keys) if keys is not None else None, debounce=debounce, wait=wait)
        watcher.start()
        return watcher

    def _require_client(self) -> Client:
        if self._client is None:
            raise RuntimeError("this Config is not bound to a client")
        return self._client


class WatchState:
    """The index to wait past, the jittered wait, and the error backoff of one watch loop."""

    def __init__(self, index: int, *, wait: float, max_backoff: float = 30.0) -> None:
        self.index = index
        self.wait = wait
        self.errors = 0
        self.max_backoff = max_backoff

    def request_wait(self) -> float:
        # Jitter, so that watchers started together (a deploy) do not all come back in the same second.
        return self.wait * random.uniform(0.8, 1.0)

    def answered(self, index: int) -> bool:
        """Record an answer; True when it is a new state to deliver (past the index, or gone backwards)."""
        self.errors = 0
        if index == self.index:
            return False  # the wait ran out without a change
        if index < self.index:
            log.info("config index went backwards (%s -> %s): taking the new state", self.index, index)
        self.index = index
        return True

    def failed(self, error: ControlPlaneError) -> float:
        """Seconds to sleep after an error: exponential with full jitter, the server's Retry-After as a floor."""
        self.errors += 1
        delay = random.uniform(0, min(self.max_backoff, 0.25 * (2 ** min(self.errors, 10))))
        advised = getattr(error, "retry_after", None)
        if isinstance(error, RateLimited) or advised:
            delay = max(delay, float(advised or 1.0))
        log.warning("config watch error (%s); retrying in %.1fs", error, delay)
        return delay


class Debouncer:
    """Collects changes and says when to deliver them: `quiet` seconds after the last one, at most
    `max_wait` after the first (consul-template's `wait = "min:max"`)."""

    def __init__(self, quiet: float, max_wait: float | None = None) -> None:
        self.quiet = quiet
        self.max_wait = max_wait if max_wait is not None else quiet * 4
        self.first: float | None = None
        self.last: float | None = None

    def add(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.first = self.first if self.first is not None else now
        self.last = now

    def due(self, now: float | None = None) -> bool:
        if self.first is None or self.last is None:
            return False
        now = time.monotonic() if now is None else now
        return now - self.last >= self.quiet or now - self.first >= self.max_wait

    def remaining(self, now: float | None = None) -> float | None:
        if self.first is None or self.last is None:
            return None
        now = time.monotonic() if now is None else now
        return max(0.0, min(self.last + self.quiet, self.first + self.max_wait) - now)

    def reset(self) -> None:
        self.first = self.last = None


class Watcher(threading.Thread):
    """A daemon thread running `Config.watch` and calling back, debounced, for the keys asked."""

    def __init__(
        self,
        config: Config,
        callback: Callable[[Config, set[str]], Any],
        *,
        keys: list[str] | None,
        debounce: float,
        wait: float,
    ) -> None:
        super().__init__(name=f"cp-watch-{config.namespace}", daemon=True)
        self.config, self.callback, self.keys, self.wait = config, callback, keys, wait
        self.debouncer = Debouncer(debounce)
        self.stopping = threading.Event()
        self.error: ControlPlaneError | None = None
        self._pending: set[str] = set()
        self._latest = config
        self._lock = threading.Condition()

    def run(self) -> None:
        feeder = threading.Thread(target=self._feed, name=f"{self.name}-poll", daemon=True)
        feeder.start()
        while not self.stopping.is_set():
            with self._lock:
                remaining = self.debouncer.remaining()
                self._lock.wait(timeout=remaining if remaining is not None else 1.0)
                if not self.debouncer.due():
                    continue
                config, keys = self._latest, self._pending
                self._pending = set()
                self.debouncer.reset()
            try:
                self.callback(config, keys)
            except Exception:  # a failing callback must not end the watch
                log.exception("config on_change callback failed")

    def _feed(self) -> None:
        previous = self.config
        try:
            for config in self.config.watch(wait=self.wait, stop=self.stopping):
                changed = relevant(self.keys, changed_keys(previous, config))
                previous = config
                if not changed:
                    continue
                with self._lock:
                    self._latest = config
                    self._pending |= changed
                    self.debouncer.add()
                    self._lock.notify()
        except ControlPlaneError as exc:  # a fatal refusal (401/403/404): recorded for the owner, the thread ends
            self.error = exc
            self.stopping.set()

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        with self._lock:
            self._lock.notify()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)
