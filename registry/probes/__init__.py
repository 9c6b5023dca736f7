"""Probe kinds, keyed by name. Adding a kind = one module + one entry here.

`http` and `tcp` back the check kinds of the same name; the others are `custom` probes, chosen by a
check's `probe` field.
"""

from __future__ import annotations

from registry.probes.base import Probe, ProbeContext, ProbeResult, ProbeSpec
from registry.probes.http import HttpProbe
from registry.probes.postgres import PostgresProbe
from registry.probes.redis import RedisProbe
from registry.probes.tcp import TcpProbe

PROBE_KINDS: dict[str, type[Probe]] = {
    "http": HttpProbe,
    "tcp": TcpProbe,
    "redis": RedisProbe,
    "postgres": PostgresProbe,
}

CUSTOM_PROBES = tuple(name for name, cls in PROBE_KINDS.items() if cls.custom)

__all__ = ["CUSTOM_PROBES", "PROBE_KINDS", "Probe", "ProbeContext", "ProbeResult", "ProbeSpec"]
