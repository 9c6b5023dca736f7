"""TCP probe: passing when a connection to host:port (defaults from the instance) is accepted."""

from __future__ import annotations

import asyncio
import time

from controlplane.egress import Purpose, check_ip
from registry.probes.base import Probe, ProbeContext, ProbeResult, ProbeSpec, elapsed_ms, resolve_allowed


class TcpProbe(Probe):
    """Connects and closes (a bare transport: no stream objects); the connected IP passes the egress guard."""

    name = "tcp"

    async def run(self, spec: ProbeSpec, ctx: ProbeContext) -> ProbeResult:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        last_error: OSError | None = None
        for address in await resolve_allowed(spec.target_host, spec.target_port):
            try:
                transport, _ = await loop.create_connection(asyncio.Protocol, address, spec.target_port)
            except OSError as exc:
                last_error = exc
                continue
            latency = elapsed_ms(started)
            try:
                check_ip(transport.get_extra_info("peername")[0], purpose=Purpose.PROBE)
            finally:
                transport.close()
            return ProbeResult("passing", latency, f"TCP connect {address}:{spec.target_port}: success")
        raise last_error or OSError(f"Could not connect to {spec.target_host}:{spec.target_port}")
