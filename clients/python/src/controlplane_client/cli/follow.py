"""Shared by `cpctl exec` and `cpctl render`: durations, `--wait min:max`, and a config watch feeding a queue."""

from __future__ import annotations

import json
import queue
import re
import threading
from typing import Any

import click

from controlplane_client.config import Config
from controlplane_client.errors import ControlPlaneError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def duration(text: str) -> float:
    """`500ms`, `2s`, `1.5`, `5m` -> seconds."""
    match = _DURATION.match(text)
    if not match:
        raise click.BadParameter(f"{text!r} is not a duration such as 500ms, 2s or 5m")
    return float(match.group(1)) * _UNITS[match.group(2)]


def wait_range(text: str) -> tuple[float, float]:
    """`--wait min[:max]`: settle `min` seconds after the last change, never more than `max` after the first."""
    low, _, high = text.partition(":")
    quiet = duration(low)
    most = duration(high) if high else max(quiet * 4, quiet)
    if most < quiet:
        raise click.BadParameter("--wait max must not be below min")
    return quiet, most


def env_name(prefix: str, key: str) -> str:
    """`db.port` with prefix `PAYMENTS_` -> `PAYMENTS_DB_PORT`."""
    return prefix + re.sub(r"[^A-Za-z0-9]", "_", key).upper()


def env_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def config_env(config: Config, prefix: str) -> dict[str, str]:
    """The namespace as environment variables, one per leaf key."""
    return {env_name(prefix, key): env_value(value) for key, value in sorted(config.flat().items())}


class ConfigFeed(threading.Thread):
    """Runs `config.watch()` in a daemon thread and puts each new `Config` (or a fatal error) on `queue`."""

    def __init__(self, config: Config, *, wait: float = 30.0) -> None:
        super().__init__(name=f"cp-feed-{config.namespace}", daemon=True)
        self.config, self.wait = config, wait
        self.queue: queue.Queue[Config | ControlPlaneError] = queue.Queue()
        self.stopping = threading.Event()

    def run(self) -> None:
        try:
            for config in self.config.watch(wait=self.wait, stop=self.stopping):
                self.queue.put(config)
        except ControlPlaneError as error:  # the key may no longer read the namespace
            self.queue.put(error)

    def stop(self) -> None:
        self.stopping.set()
