"""A bar chart of upcoming token expiries, drawn on the server as SVG.

The status page shows how many connected tokens expire in each slice of the next
24 hours, so a load peak (many users who connected together) is visible at a
glance. The SVG is built from escaped text only: no script, no external fonts.
"""

from __future__ import annotations

from datetime import datetime
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 16, 36


def _nice_ceiling(value: int) -> int:
    """The smallest of 1, 2 or 5 times a power of ten that is at least ``value``."""
    ceiling = 1
    while True:
        for step in (1, 2, 5):
            if step * ceiling >= value:
                return step * ceiling
        ceiling *= 10


def _bucket_minutes(buckets: list[tuple[datetime, int]]) -> int:
    if len(buckets) < 2:
        return 60
    return max(int((buckets[1][0] - buckets[0][0]).total_seconds() // 60), 1)


def render(buckets: list[tuple[datetime, int]]) -> str:
    """An SVG bar per bucket, with a value axis and hour labels along the bottom."""
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top_value = _nice_ceiling(max((count for _, count in buckets), default=0) or 1)
    slot = plot_width / max(len(buckets), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" id="expiry-chart" '
        'aria-label="Tokens expiring in the next 24 hours">',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_width}" height="{plot_height}" '
        'fill="#f6f8fa" stroke="#d0d7de"/>',
    ]
    for fraction in (0.5, 1.0):
        y = TOP + plot_height * (1 - fraction)
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
            'stroke="#d0d7de" stroke-dasharray="3 3"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" '
            f'font-size="11" fill="#57606a">{int(top_value * fraction)}</text>'
        )
    for index, (start, count) in enumerate(buckets):
        height = plot_height * count / top_value
        x = LEFT + index * slot
        parts.append(
            f'<rect class="bar" x="{x + 1:.1f}" y="{TOP + plot_height - height:.1f}" '
            f'width="{max(slot - 2, 1):.1f}" height="{height:.1f}" fill="#0969da">'
            f"<title>{escape(start.strftime('%H:%M'))} UTC: {count} tokens</title>"
            "</rect>"
        )
        if index % max(len(buckets) // 8, 1) == 0:
            parts.append(
                f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" font-size="11" '
                f'fill="#57606a">{escape(start.strftime("%H:%M"))}</text>'
            )
    minutes = _bucket_minutes(buckets)
    parts.append(
        f'<text x="{LEFT}" y="{HEIGHT - 4}" font-size="11" fill="#57606a">'
        f"token expiries per {minutes} minutes, next {len(buckets) * minutes // 60} "
        "hours (UTC)</text></svg>"
    )
    return "".join(parts)
