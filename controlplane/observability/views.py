"""/healthz (liveness), /readyz (readiness per component) and /metrics (Prometheus)."""

from __future__ import annotations

import hmac
import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from controlplane.errors import problem_response
from controlplane.observability.metrics import render_metrics
from controlplane.observability.readiness import readiness_report


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is alive and serving requests; checks nothing else."""
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Per-component readiness: `ready`, `degraded` (200) or `unavailable` (503, a required component failed)."""
    status, components = readiness_report()
    return JsonResponse({"status": status, "components": components}, status=503 if status == "unavailable" else 200)


def _metrics_client_allowed(request: HttpRequest) -> bool:
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in network for network in _metrics_networks(tuple(settings.METRICS_ALLOW_NETWORKS)))


@lru_cache(maxsize=4)
def _metrics_networks(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition for clients in `METRICS_ALLOW_NETWORKS` (default loopback) holding the token.

    With `METRICS_TOKEN` set, `Authorization: Bearer <token>` is required too (and the network default
    widens to any address). The client address is `REMOTE_ADDR`: behind a reverse proxy on the same
    host every request comes from loopback, so set a token or do not route /metrics through the proxy.
    """
    if not _metrics_client_allowed(request):
        return problem_response(403, "Metrics are not served to this address (METRICS_ALLOW_NETWORKS).")
    token = settings.METRICS_TOKEN
    if token:
        given = request.META.get("HTTP_AUTHORIZATION", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return problem_response(
                401, "A metrics bearer token is required.", headers={"WWW-Authenticate": 'Bearer realm="metrics"'}
            )
    body, content_type = render_metrics()
    return HttpResponse(body, content_type=content_type)
