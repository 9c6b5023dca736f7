"""Request tracing, structured logs, health/readiness endpoints and Prometheus metrics."""
