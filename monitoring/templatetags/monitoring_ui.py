"""Template filters of the dashboard and status page: a status as icon + word, percentages, durations."""

from __future__ import annotations

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

from monitoring.charts import style

register = template.Library()


@register.filter
def status_badge(status: str | None) -> SafeString:
    """`<span class="st st-critical" data-status="critical">✖ critical</span>`: icon and word, never colour alone."""
    status = status or "unknown"
    _, icon, _ = style(status)
    return format_html(
        '<span class="st st-{}" data-status="{}"><span aria-hidden="true">{}</span> {}</span>',
        status,
        status,
        icon,
        status,
    )


@register.filter
def pct(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value * 100:.{int(digits)}f}%"


@register.filter
def ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} ms"


@register.filter
def seconds_ago(value: float | None) -> str:
    if value is None:
        return "never"
    if value < 120:
        return f"{value:.0f} s ago"
    if value < 7200:
        return f"{value / 60:.0f} min ago"
    return f"{value / 3600:.1f} h ago"


@register.filter
def per_second(value: float | None) -> str:
    return "0/s" if not value else f"{value:.2f}/s"
