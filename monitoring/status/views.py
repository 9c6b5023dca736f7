"""The public status page and badges: anonymous, read-only, cached for a few seconds so it cannot load the database.

The cache key ignores the query string, cookies and headers: every visitor gets the same bytes, and no
parameter can make a request miss the cache. A badge of a private service and of a missing one are the
same 404, so the page does not tell which private names exist.
"""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.views.decorators.http import require_safe

from monitoring import charts
from monitoring.selectors import statuspage

BADGE_KINDS = ("status", "uptime-24h", "uptime-30d")


def cache_seconds() -> int:
    return int(getattr(settings, "MONITORING_STATUS_CACHE_SECONDS", 10))


def _cached(key: str, build) -> tuple[bytes, int]:  # type: ignore[no-untyped-def]
    found = cache.get(key)
    if found is None:
        found = build()
        cache.set(key, found, cache_seconds())
    return found


def _public(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = f"public, max-age={cache_seconds()}"
    response["X-Robots-Tag"] = "noindex"
    return response


def _render_page() -> tuple[bytes, int]:
    data = statuspage.status_page()
    for service in data["services"]:
        service.bar = charts.uptime_bar_of(service.bars, service.target)
    return render_to_string("monitoring/status/page.html", data).encode(), 200


@require_safe
def status_page(request: HttpRequest) -> HttpResponse:
    """`/status/`: public services, uptime bars, maintenance and incidents."""
    body, status = _cached("monitoring:status:page", _render_page)
    return _public(HttpResponse(body, status=status, content_type="text/html; charset=utf-8"))


def _render_badge(key: str, kind: str) -> tuple[bytes, int]:
    data = statuspage.badge_data(key=key)
    if data is None:
        return charts.badge("status", "not found", "unknown").encode(), 404
    if kind == "status":
        _, icon, word = charts.style(data.status)
        svg = charts.badge(
            data.name, f"{icon} {word}" if data.status != "passing" else f"{icon} operational", data.status
        )
    else:
        value = data.uptime_24h if kind == "uptime-24h" else data.uptime_30d
        label = f"uptime {kind.split('-')[1]}"
        text = "no data" if value is None else f"{value * 100:.2f}%"
        tone = (
            "unknown" if value is None else "passing" if value >= 0.999 else "warning" if value >= 0.99 else "critical"
        )
        svg = charts.badge(label, text, tone)
    return svg.encode(), 200


@require_safe
def badge(request: HttpRequest, key: str) -> HttpResponse:
    """`/status/badge/<service>.svg?type=status|uptime-24h|uptime-30d` for a public service."""
    kind = request.GET.get("type", "status")
    if kind not in BADGE_KINDS:
        body = charts.badge("badge", "type: status, uptime-24h or uptime-30d", "unknown").encode()
        return _public(HttpResponse(body, status=400, content_type="image/svg+xml"))
    body, status = _cached(f"monitoring:status:badge:{kind}:{key[:100]}", lambda: _render_badge(key, kind))
    response = HttpResponse(body, status=status, content_type="image/svg+xml")
    response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    return _public(response)
