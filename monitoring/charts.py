"""Server-rendered SVG: latency charts, 90-day uptime bars, per-step bars and status badges. No JavaScript, no CDN.

Every figure carries text for what its colours say (a <title> per mark, a legend, a shape per status), so
nothing is told by colour alone. Output is markup built from numbers and escaped text only.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from datetime import datetime
from html import escape

from django.utils.safestring import SafeString, mark_safe

from monitoring.selectors.dashboard_history import DaySegment, LatencyPoint, day_status, share_uptime
from monitoring.selectors.uptime_days import DayBars

# Status -> (colour, icon, word). The icon and the word travel with the colour everywhere.
STATUS_STYLE: dict[str, tuple[str, str, str]] = {
    "passing": ("#2e7d32", "✔", "operational"),
    "warning": ("#b26a00", "▲", "degraded"),
    "degraded": ("#b26a00", "▲", "degraded"),
    "critical": ("#c62828", "✖", "down"),
    "down": ("#c62828", "✖", "down"),
    "maintenance": ("#1565c0", "‖", "maintenance"),
    "unknown": ("#757575", "?", "no data"),
    # Alert states: each its own icon, so an alert row is never a bare colour (nor the "unknown" `?`).
    "firing": ("#c62828", "!", "firing"),
    "pending": ("#b26a00", "…", "pending"),
    "resolved": ("#2e7d32", "✓", "resolved"),
    "flapping": ("#b26a00", "⇅", "flapping"),
    "inactive": ("#757575", "–", "inactive"),
}


def style(status: str) -> tuple[str, str, str]:
    return STATUS_STYLE.get(status, STATUS_STYLE["unknown"])


def _pct(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value * 100:.{digits}f}%"


def latency_chart(points: Sequence[LatencyPoint], *, width: int = 720, height: int = 180) -> SafeString:
    """p50 (solid) and p95 (dashed) latency lines with a y axis in ms and the first/last times on the x axis."""
    pad_left, pad_bottom, pad_top = 48, 20, 10
    plot_w, plot_h = width - pad_left - 8, height - pad_bottom - pad_top
    values = [v for p in points for v in (p.p50, p.p95) if v is not None]
    top = max(values) * 1.1 if values else 1.0
    step = plot_w / max(1, len(points) - 1)

    def line(attr: str) -> list[str]:
        runs, current = [], []
        for index, point in enumerate(points):
            value = getattr(point, attr)
            if value is None:  # a gap in the data is a gap in the line, not a drop to zero
                if current:
                    runs.append(current)
                current = []
                continue
            x = pad_left + index * step
            y = pad_top + plot_h - value / top * plot_h
            current.append(f"{x:.1f},{y:.1f}")
        if current:
            runs.append(current)
        return [" ".join(run) for run in runs]

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" aria-label="Latency p50 and p95 in milliseconds">',
        f"<title>Latency p50 (solid) and p95 (dashed), max {top / 1.1 if values else 0:.0f} ms</title>",
        f'<line x1="{pad_left}" y1="{pad_top + plot_h}" x2="{width - 8}" y2="{pad_top + plot_h}" stroke="#999"/>',
        f'<line x1="{pad_left}" y1="{pad_top}" x2="{pad_left}" y2="{pad_top + plot_h}" stroke="#999"/>',
    ]
    for fraction in (0, 0.5, 1):
        y = pad_top + plot_h - fraction * plot_h
        parts.append(
            f'<text x="{pad_left - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="10">{top * fraction:.0f} ms</text>'
        )
    for attr, dash, colour in (("p50", "", "#1565c0"), ("p95", ' stroke-dasharray="5 3"', "#c62828")):
        for run in line(attr):
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5"{dash} points="{run}"/>')
    if points:
        parts.append(
            f'<text x="{pad_left}" y="{height - 4}" font-size="10">{_time(points[0].start)}</text>'
            f'<text x="{width - 8}" y="{height - 4}" font-size="10" text-anchor="end">{_time(points[-1].start)}</text>'
        )
    if not values:
        parts.append(
            f'<text x="{width / 2}" y="{pad_top + plot_h / 2}" text-anchor="middle" font-size="12">'
            "No latency recorded in this range</text>"
        )
    parts.append(
        f'<text x="{width - 8}" y="{pad_top + 10}" font-size="10" text-anchor="end">— p50   - - p95</text></svg>'
    )
    return mark_safe("".join(parts))  # noqa: S308 - numbers and fixed strings only


def _time(when: datetime) -> str:
    return when.strftime("%d %b %H:%M UTC")


def uptime_bar(segments: Sequence[DaySegment], *, width: int = 720, height: int = 34) -> SafeString:
    """One segment per day, oldest left: full bar = passing, short bar with a cross = down, hatched = maintenance,
    outlined = no data. Each segment's <title> gives the day, its word and its uptime."""
    rows = ((s.share.window, s.status, s.share.uptime) for s in segments)
    return _uptime_bar(rows, len(segments), width, height)


def uptime_bar_of(bars: DayBars, target: str, *, width: int = 720, height: int = 34) -> SafeString:
    """`uptime_bar` of one target of `bars`, drawn from the numbers (no object per day)."""
    rows = ((name, day_status(*shares), share_uptime(*shares, seconds)) for name, seconds, shares in bars.rows(target))
    return _uptime_bar(rows, len(bars.calendar), width, height)


def _uptime_bar(rows: Iterable[tuple[str, str, float | None]], count: int, width: int, height: int) -> SafeString:
    """The bar from (day name, status, uptime) per day."""
    opening, closing = _bar_marks(count, width, height)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="uptime-bar" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" aria-label="Uptime per day, last {count} days">',
        '<defs><pattern id="hatch" width="4" height="4" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
        '<rect width="2" height="4" fill="#1565c0"/></pattern></defs>',
    ]
    for index, (name, status, uptime) in enumerate(rows):
        # The day's name is its ISO date (digits and dashes) and the rest is fixed text: nothing to escape.
        parts.append(
            f"{opening[status]}{name}{_BAR_WORDS[status]}"
            f"{'n/a' if uptime is None else f'{uptime * 100:.2f}%'}{closing[status][index]}"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - numbers, fixed strings and ISO dates only


# ": <icon> <word>, uptime " per status, escaped once.
_BAR_WORDS = {status: escape(f": {icon} {word}, uptime ") for status, (_, icon, word) in STATUS_STYLE.items()}


@functools.lru_cache(maxsize=8)
def _bar_marks(count: int, width: int, height: int) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The fixed markup around each segment's title: per status, the opening, and the closing shape per position.

    A bar is 90 segments and the status page draws one per public service: building each shape's geometry
    once per bar size, instead of for each of the 2,250 segments of a page, is most of the drawing time saved.
    """
    gap = 2
    seg_w = (width - gap * (count - 1)) / max(1, count)
    opening = {status: f'<g class="day day-{status}" data-status="{status}"><title>' for status in STATUS_STYLE}
    closing: dict[str, list[str]] = {}
    for status in STATUS_STYLE:
        colour = style(status)[0]
        shapes = []
        for index in range(count):
            x = index * (seg_w + gap)
            if status == "unknown":
                shape = (
                    f'<rect x="{x:.1f}" y="1" width="{seg_w:.1f}" height="{height - 2}" fill="none" stroke="#9e9e9e"/>'
                )
            elif status == "maintenance":
                shape = f'<rect x="{x:.1f}" y="0" width="{seg_w:.1f}" height="{height}" fill="url(#hatch)"/>'
            elif status == "down":
                shape = (
                    f'<rect x="{x:.1f}" y="{height / 3:.1f}" width="{seg_w:.1f}" height="{height * 2 / 3:.1f}" '
                    f'fill="{colour}"/><text x="{x + seg_w / 2:.1f}" y="{height / 3 - 1:.1f}" font-size="9" '
                    'text-anchor="middle">✖</text>'
                )
            else:
                shape = f'<rect x="{x:.1f}" y="0" width="{seg_w:.1f}" height="{height}" fill="{colour}"/>'
            shapes.append(f"</title>{shape}</g>")
        closing[status] = shapes
    return opening, closing


def step_bars(counts: Sequence[tuple[float, ...]], *, width: int = 360, height: int = 60) -> SafeString:
    """Packets per bin (grey) with the errors (red) and drops (amber, above the errors) among them.

    `counts`: (packets, errors) or (packets, errors, drops) per bin; each bin's figures are in its tooltip
    too, so the series are told apart by words, not only by colour.
    """
    top = max((row[0] for row in counts), default=0) or 1
    bar_w = width / max(1, len(counts))
    scale = (height - 2) / top
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="step-bars" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" aria-label="Packets, errors and drops per bin"><title>Packets (grey), '
        f"errors (red) and drops (amber) per bin, peak {top:.0f}</title>"
    ]
    for index, row in enumerate(counts):
        total, errors = row[0], row[1]
        drops = row[2] if len(row) > 2 else 0
        x, w = index * bar_w, max(bar_w - 1, 1)
        h, e, d = total * scale, errors * scale, drops * scale
        parts.append(
            f"<g><title>{total:.0f} packets, {errors:.0f} errors, {drops:.0f} drops</title>"
            f'<rect x="{x:.1f}" y="{height - h:.1f}" width="{w:.1f}" height="{h:.1f}" fill="#9e9e9e"/>'
        )
        if errors:
            parts.append(f'<rect x="{x:.1f}" y="{height - e:.1f}" width="{w:.1f}" height="{e:.1f}" fill="#c62828"/>')
        if drops:
            parts.append(
                f'<rect class="drops" x="{x:.1f}" y="{height - e - d:.1f}" width="{w:.1f}" height="{d:.1f}" '
                'fill="#ef8f00"/>'
            )
        parts.append("</g>")
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - numbers only


def badge(label: str, message: str, status: str) -> str:
    """A shields.io-style flat badge; the message text says what the colour does."""
    colour = style(status)[0]
    label, message = escape(label), escape(message)
    left = 6 * len(label) + 12
    right = 6 * len(message) + 12
    total = left + right
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" aria-label="{label}: {message}">'
        f"<title>{label}: {message}</title>"
        f'<rect width="{left}" height="20" fill="#555"/><rect x="{left}" width="{right}" height="20" fill="{colour}"/>'
        '<g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11" text-anchor="middle">'
        f'<text x="{left / 2}" y="14">{label}</text><text x="{left + right / 2}" y="14">{message}</text></g></svg>'
    )


def sparkline(values: Sequence[float | None], *, width: int = 240, height: int = 40, unit: str = "ms") -> SafeString:
    """A small line (gaps where there is no value) with its peak written next to it: p95 latency per bin."""
    known = [v for v in values if v is not None]
    top = max(known) if known else 0.0
    step = width / max(1, len(values) - 1)
    runs, current = [], []
    for index, value in enumerate(values):
        if value is None:
            if current:
                runs.append(current)
            current = []
            continue
        current.append(f"{index * step:.1f},{height - 2 - (value / top * (height - 12) if top else 0):.1f}")
    if current:
        runs.append(current)
    lines = "".join(f'<polyline fill="none" stroke="#1565c0" points="{" ".join(run)}"/>' for run in runs)
    label = f"peak {top:.0f} {unit}" if known else "no data"
    return mark_safe(  # noqa: S308 - numbers and fixed strings only
        f'<svg xmlns="http://www.w3.org/2000/svg" class="sparkline" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" aria-label="p95 latency per bin, {label}"><title>p95 latency per bin, '
        f'{label}</title>{lines}<text x="{width - 2}" y="9" font-size="9" text-anchor="end">{label}</text></svg>'
    )
