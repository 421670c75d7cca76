"""Charts drawn on the server as inline SVG: no third-party script, nothing to download.

Every chart has a title and a description for screen readers, and the figures it draws
are also in a table next to it (``<details>``), so nothing is only a picture.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from markupsafe import Markup, escape


@dataclass(frozen=True)
class Point:
    label: str
    value: float


def _svg(width: int, height: int, title: str, body: str) -> Markup:
    t = escape(title)
    return Markup(
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{t}"'
        f' preserveAspectRatio="xMinYMin meet"><title>{t}</title>{body}</svg>')


def column_chart(points: list[Point], title: str, *, width: int = 720,
                 height: int = 160) -> Markup:
    """Vertical bars, one per point (e.g. revenue per day), with a zero line."""
    if not points:
        return Markup('<p class="empty">No data in this period.</p>')
    top = max(max(p.value for p in points), 0.0)
    bottom = min(min(p.value for p in points), 0.0)
    span = (top - bottom) or 1.0
    plot = height - 20
    step = width / len(points)
    zero = plot * top / span
    bars = []
    for i, p in enumerate(points):
        h = plot * abs(p.value) / span
        y = zero - h if p.value >= 0 else zero
        cls = "bar" if p.value >= 0 else "bar negative"
        bars.append(f'<rect class="{cls}" x="{i * step + 0.5:.1f}" y="{y:.1f}"'
                    f' width="{max(step - 1, 0.5):.1f}" height="{max(h, 0.5):.1f}">'
                    f'<title>{escape(p.label)}: {p.value:,.2f}</title></rect>')
    first, last = escape(points[0].label), escape(points[-1].label)
    axis = (f'<line class="axis" x1="0" y1="{zero:.1f}" x2="{width}" y2="{zero:.1f}"/>'
            f'<text class="tick" x="0" y="{height - 4}">{first}</text>'
            f'<text class="tick" x="{width}" y="{height - 4}" text-anchor="end">{last}</text>')
    return _svg(width, height, title, "".join(bars) + axis)


def bar_chart(points: list[Point], title: str, *, width: int = 420,
              unit: str = "", share: bool = False) -> Markup:
    """Horizontal bars with their labels and values (categories, funnel steps)."""
    if not points:
        return Markup('<p class="empty">No data in this period.</p>')
    row, label_w = 28, 110
    top = max((p.value for p in points), default=0) or 1.0
    if share:
        top = max(top, 1.0)
    height = row * len(points) + 4
    parts = []
    for i, p in enumerate(points):
        y = i * row + 2
        w = (width - label_w - 70) * max(p.value, 0) / top
        shown = f"{p.value * 100:.1f} %" if share else f"{p.value:,.0f}{unit}"
        parts.append(
            f'<text class="label" x="{label_w - 6}" y="{y + 17}" text-anchor="end">'
            f'{escape(p.label)}</text>'
            f'<rect class="bar" x="{label_w}" y="{y + 4}" width="{max(w, 1):.1f}" height="18"/>'
            f'<text class="value" x="{label_w + w + 6:.1f}" y="{y + 17}">{shown}</text>')
    return _svg(width, height, title, "".join(parts))


def days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=n) for n in range((end - start).days)]


@dataclass(frozen=True)
class Span:
    """The range a timeline shows, and where an instant falls on it (0..width)."""

    start: datetime
    end: datetime
    width: float

    def x(self, at: datetime) -> float:
        total = (self.end - self.start).total_seconds()
        offset = (min(max(at, self.start), self.end) - self.start).total_seconds()
        return self.width * offset / total
