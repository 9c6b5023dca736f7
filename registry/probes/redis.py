"""Custom probe `redis`: PING (after AUTH when a password is given) over RESP; passing on +PONG."""

from __future__ import annotations

import time
from typing import Any

from registry.probes.base import Probe, ProbeContext, ProbeResult, ProbeSpec, close_writer, elapsed_ms, open_checked


def _command(*parts: str) -> bytes:
    out = [f"*{len(parts)}\r\n".encode()]
    for part in parts:
        raw = part.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


class RedisProbe(Probe):
    """Params: `password`, `username` (ACL), `host`/`port` overrides."""

    name = "redis"
    custom = True

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> dict[str, list[str]]:
        errors = {}
        for key in ("password", "username"):
            if key in params and not isinstance(params[key], str):
                errors[f"params.{key}"] = ["Must be a string."]
        return errors

    async def run(self, spec: ProbeSpec, ctx: ProbeContext) -> ProbeResult:
        started = time.perf_counter()
        reader, writer, _ = await open_checked(spec.target_host, spec.target_port)
        try:
            if spec.params.get("password"):
                auth = (
                    [spec.params["username"], spec.params["password"]]
                    if spec.params.get("username")
                    else [spec.params["password"]]
                )
                writer.write(_command("AUTH", *auth))
                reply = await reader.readline()
                if not reply.startswith(b"+OK"):
                    return ProbeResult(
                        "critical", elapsed_ms(started), f"AUTH failed: {reply[:200].decode(errors='replace').strip()}"
                    )
            writer.write(_command("PING"))
            await writer.drain()
            reply = await reader.readline()
        finally:
            await close_writer(writer)
        latency = elapsed_ms(started)
        text = reply[:200].decode(errors="replace").strip()
        if reply.startswith(b"+PONG"):
            return ProbeResult("passing", latency, "PING: PONG")
        return ProbeResult("critical", latency, f"PING: unexpected reply {text!r}")
