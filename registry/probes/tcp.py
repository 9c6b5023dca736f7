"""TCP probe: passing when a connection to host:port (defaults from the instance) is accepted."""

from __future__ import annotations

import time

from registry.probes.base import Probe, ProbeContext, ProbeResult, ProbeSpec, close_writer, elapsed_ms, open_checked


class TcpProbe(Probe):
    """Connects and closes; the connected IP passes the egress guard first."""

    name = "tcp"

    async def run(self, spec: ProbeSpec, ctx: ProbeContext) -> ProbeResult:
        started = time.perf_counter()
        _, writer, address = await open_checked(spec.target_host, spec.target_port)
        latency = elapsed_ms(started)
        await close_writer(writer)
        return ProbeResult("passing", latency, f"TCP connect {address}:{spec.target_port}: success")
