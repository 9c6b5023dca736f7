"""Reads of the monitoring app, one module per area (series, uptime, maintenance, …)."""
