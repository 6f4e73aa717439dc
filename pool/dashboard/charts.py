"""Line charts as inline SVG, drawn on the server: no charting library, no script, nothing fetched
from elsewhere (the dashboard runs offline, under a CSP of 'self'). Colours come from classes in
style.css (a `style` attribute would be refused by that CSP). Every text is escaped."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from markupsafe import Markup, escape

Point = tuple[datetime, float | None]

WIDTH, HEIGHT = 640, 170
LEFT, RIGHT, TOP, BOTTOM = 44, 10, 10, 22
TICK_HOURS = 6


@dataclass(frozen=True)
class Line:
    label: str
    # The class suffix its colour comes from (`line-<series>` in style.css) and its test handle.
    series: str
    points: Sequence[Point]
    # A step line holds its value until the next point (a target); otherwise points are joined.
    step: bool = False


def nice_ceiling(value: float) -> float:
    """The axis top: 1, 2 or 5 times a power of ten, at least `value` (and at least 1)."""
    if value <= 1:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for factor in (1, 2, 5, 10):
        if factor * power >= value:
            return float(factor * power)
    return float(10 * power)


def _number(value: float, unit: str) -> str:
    text = f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"
    return f"{text}{unit}"


def chart(
    chart_id: str,
    title: str,
    lines: Sequence[Line],
    *,
    start: datetime,
    end: datetime,
    unit: str = "",
    gap: timedelta = timedelta(minutes=3),
    top: float | None = None,
) -> Markup:
    """An SVG chart of `lines` over [start, end]: a point further than `gap` from the one before
    starts a new segment (no line drawn across minutes nobody sampled)."""
    values = [v for line in lines for _, v in line.points if v is not None]
    y_top = top if top is not None else nice_ceiling(max(values, default=0.0))
    span = max((end - start).total_seconds(), 1.0)
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(at: datetime) -> float:
        return LEFT + inner_w * min(max((at - start).total_seconds() / span, 0.0), 1.0)

    def y(value: float) -> float:
        return TOP + inner_h * (1 - min(value / y_top, 1.0))

    parts = [
        f'<svg id="{escape(chart_id)}" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" preserveAspectRatio="xMidYMid meet"><title>{escape(title)}</title>'
    ]
    for fraction in (0.0, 0.5, 1.0):
        gy = y(y_top * fraction)
        parts.append(f'<line class="grid" x1="{LEFT}" y1="{gy:.1f}" x2="{WIDTH - RIGHT}" y2="{gy:.1f}"/>')
        label = escape(_number(y_top * fraction, unit))
        parts.append(f'<text class="axis" x="{LEFT - 4}" y="{gy + 4:.1f}" text-anchor="end">{label}</text>')
    tick = start.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    while tick < end:
        if tick.hour % TICK_HOURS == 0:
            tx = x(tick)
            parts.append(
                f'<line class="grid" x1="{tx:.1f}" y1="{TOP}" x2="{tx:.1f}" y2="{HEIGHT - BOTTOM}"/>'
            )
            parts.append(
                f'<text class="axis" x="{tx:.1f}" y="{HEIGHT - 6}" text-anchor="middle">{tick:%H:%M}</text>'
            )
        tick += timedelta(hours=1)
    drawn = 0
    for line in lines:
        for segment in _segments(line, gap):
            coords = " ".join(f"{x(at):.1f},{y(v):.1f}" for at, v in segment)
            parts.append(
                f'<polyline class="line line-{escape(line.series)}" data-series="{escape(line.series)}" '
                f'data-points="{len(segment)}" points="{coords}"/>'
            )
            drawn += 1
    if drawn == 0:
        middle = f'x="{WIDTH / 2:.0f}" y="{HEIGHT / 2:.0f}" text-anchor="middle"'
        parts.append(f'<text class="empty" {middle}>no samples yet</text>')
    parts.append("</svg>")
    legend = "".join(
        f'<li><span class="swatch line-{escape(line.series)}"></span>{escape(line.label)}</li>'
        for line in lines
    )
    return Markup(f'<figure class="picture">{"".join(parts)}<ul class="legend">{legend}</ul></figure>')


def _segments(line: Line, gap: timedelta) -> list[list[tuple[datetime, float]]]:
    segments: list[list[tuple[datetime, float]]] = []
    current: list[tuple[datetime, float]] = []
    last: datetime | None = None
    for at, value in line.points:
        if value is None:
            continue
        if last is not None and at - last > gap and current:
            segments.append(current)
            current = []
        if line.step and current:
            current.append((at, current[-1][1]))
        current.append((at, value))
        last = at
    if current:
        segments.append(current)
    return segments
