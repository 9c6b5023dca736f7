"""Custom probe `postgres`: connect and run `SELECT 1`."""

from __future__ import annotations

import time
from typing import Any

from registry.probes.base import Probe, ProbeContext, ProbeResult, ProbeSpec, elapsed_ms, resolve_allowed

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


class PostgresProbe(Probe):
    """Params: `user` (default postgres), `dbname` (default postgres), `password`, `sslmode`, host/port overrides."""

    name = "postgres"
    custom = True

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> dict[str, list[str]]:
        errors = {}
        for key in ("user", "dbname", "password"):
            if key in params and not isinstance(params[key], str):
                errors[f"params.{key}"] = ["Must be a string."]
        if "sslmode" in params and params["sslmode"] not in SSL_MODES:
            errors["params.sslmode"] = [f"Choose one of {', '.join(SSL_MODES)}."]
        return errors

    async def run(self, spec: ProbeSpec, ctx: ProbeContext) -> ProbeResult:
        import psycopg

        started = time.perf_counter()
        # Connect to the address the guard allowed (hostaddr), keeping the name for TLS verification.
        address = (await resolve_allowed(spec.target_host, spec.target_port))[0]
        try:
            conn = await psycopg.AsyncConnection.connect(
                host=spec.target_host.strip("[]"),
                hostaddr=address,
                port=spec.target_port,
                user=spec.params.get("user", "postgres"),
                dbname=spec.params.get("dbname", "postgres"),
                password=spec.params.get("password") or None,
                sslmode=spec.params.get("sslmode", "prefer"),
                connect_timeout=max(1, int(spec.timeout)),
                autocommit=True,
            )
        except psycopg.OperationalError as exc:
            return ProbeResult("critical", elapsed_ms(started), f"connect failed: {str(exc).strip()[:500]}")
        try:
            async with conn.cursor() as cursor:
                await cursor.execute("SELECT 1")
                row = await cursor.fetchone()
        finally:
            await conn.close()
        latency = elapsed_ms(started)
        if row and row[0] == 1:
            return ProbeResult("passing", latency, "SELECT 1: ok")
        return ProbeResult("critical", latency, f"SELECT 1 returned {row!r}")
