"""Inline SVG charts of the experiment page, drawn on the server (no JavaScript, no CDN).

:func:`interval_chart` draws the always-valid interval of each look against time or
against units, with the zero line, the margin, and markers for the decision, the promotion
and the guardrail window.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

from markupsafe import Markup

W, H = 680, 250
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 14, 40
PHASE_COLOURS = {"experiment": "#2563eb", "guardrail": "#dc2626"}


@dataclass(frozen=True)
class Point:
    """One look: x (epoch seconds or units), the interval, its phase and outcome."""

    x: float
    low: float
    high: float
    phase: str
    outcome: str
    number: int


@dataclass(frozen=True)
class Marker:
    """A vertical line at ``x`` (``x_end``: a shaded span) with a label."""

    x: float
    label: str
    kind: str  # decision | promotion | window
    x_end: float | None = None


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def _num(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e4 or abs(v) < 1e-3:
        return f"{v:.2g}"
    return f"{v:.4g}"


def time_label(t: float) -> str:
    """``HH:MM`` (UTC) of an epoch time, the time axis' tick label."""
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M")


def interval_chart(
    points: Sequence[Point],
    *,
    margin: float,
    markers: Sequence[Marker] = (),
    x_label: str,
    x_format: Callable[[float], str] = _num,
    title: str,
) -> Markup:
    """An SVG of the intervals of ``points`` (``<svg>`` markup, safe to embed)."""
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    out = [
        f'<svg class="chart" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="#fff" stroke="#cbd5e1"/>',
    ]
    if not points:
        out.append(
            f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle" fill="#64748b" '
            'class="empty">no look with an interval yet</text></svg>'
        )
        return Markup("".join(out))
    sc = _Scale.fit(points, markers, margin)
    out += _windows(markers, sc)  # spans under everything else
    out += _axes(sc, margin, x_label, x_format)
    out += _bands(points, sc)
    out += _marker_lines(markers, sc)
    out.append("</svg>")
    return Markup("".join(out))


@dataclass(frozen=True)
class _Scale:
    """The plot area's data ranges (padded) and the data-to-pixel maps."""

    x0: float
    x1: float
    y0: float
    y1: float
    pw: float = W - LEFT - RIGHT
    ph: float = H - TOP - BOTTOM

    @classmethod
    def fit(cls, points: Sequence[Point], markers: Sequence[Marker], margin: float) -> _Scale:
        """Ranges holding every point, marker, zero and the margin, padded a little."""
        xs = [p.x for p in points] + [m.x for m in markers] + [m.x_end for m in markers if m.x_end]
        x0, x1 = min(xs), max(xs)
        if x1 - x0 < 1e-9:
            x0, x1 = x0 - 1, x1 + 1
        pad = (x1 - x0) * 0.04
        x0, x1 = x0 - pad, x1 + pad
        finite = [v for p in points for v in (p.low, p.high) if math.isfinite(v)]
        ys = [*finite, 0.0, margin]
        y0, y1 = min(ys), max(ys)
        if y1 - y0 < 1e-12:
            y0, y1 = y0 - 1, y1 + 1
        ypad = (y1 - y0) * 0.08
        return cls(x0, x1, y0 - ypad, y1 + ypad)

    def sx(self, x: float) -> float:
        return LEFT + (x - self.x0) / (self.x1 - self.x0) * self.pw

    def sy(self, y: float) -> float:
        y = min(max(y, self.y0), self.y1)  # an infinite bound is drawn at the edge
        return TOP + (self.y1 - y) / (self.y1 - self.y0) * self.ph


def _windows(markers: Sequence[Marker], sc: _Scale) -> list[str]:
    """The shaded spans of the markers that have an end."""
    out = []
    for m in markers:
        if m.x_end is not None:
            a, b = sc.sx(m.x), sc.sx(m.x_end)
            out.append(
                f'<rect class="marker-window" x="{a:.1f}" y="{TOP}" width="{max(b - a, 1):.1f}" '
                f'height="{sc.ph}" fill="#fee2e2" opacity="0.7">'
                f"<title>{escape(m.label)}</title></rect>"
            )
    return out


def _axes(sc: _Scale, margin: float, x_label: str, x_format: Callable[[float], str]) -> list[str]:
    """Grid lines and ticks, the x axis label, the zero line and the margin line."""
    pw, ph = sc.pw, sc.ph
    out = []
    for t in _ticks(sc.y0, sc.y1):
        y = sc.sy(t)
        out.append(
            f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#f1f5f9"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{_num(t)}</text>'
        )
    for t in _ticks(sc.x0, sc.x1, 6):
        x = sc.sx(t)
        out.append(
            f'<text x="{x:.1f}" y="{TOP + ph + 16}" text-anchor="middle" class="tick">'
            f"{escape(x_format(t))}</text>"
        )
    out.append(
        f'<text x="{LEFT + pw / 2}" y="{H - 6}" text-anchor="middle" class="axis">'
        f"{escape(x_label)}</text>"
    )
    zy = sc.sy(0.0)
    out.append(
        f'<line class="zero" x1="{LEFT}" x2="{LEFT + pw}" y1="{zy:.1f}" y2="{zy:.1f}" '
        'stroke="#0f172a" stroke-width="1.2"/>'
    )
    my = sc.sy(margin)
    out.append(
        f'<line class="margin" x1="{LEFT}" x2="{LEFT + pw}" y1="{my:.1f}" y2="{my:.1f}" '
        'stroke="#16a34a" stroke-dasharray="6 4" stroke-width="1.2"/>'
        f'<text x="{LEFT + pw - 4}" y="{my - 4:.1f}" text-anchor="end" class="tick" '
        f'fill="#16a34a">margin {_num(margin)}</text>'
    )
    return out


def _bands(points: Sequence[Point], sc: _Scale) -> list[str]:
    """Per phase: the band of the intervals, and each look's interval with its midpoint."""
    sx, sy = sc.sx, sc.sy
    out = []
    for phase, colour in PHASE_COLOURS.items():
        pts = sorted((p for p in points if p.phase == phase), key=lambda p: p.x)
        if not pts:
            continue
        upper = " ".join(f"{sx(p.x):.1f},{sy(p.high):.1f}" for p in pts)
        lower = " ".join(f"{sx(p.x):.1f},{sy(p.low):.1f}" for p in reversed(pts))
        out.append(
            f'<polygon class="band band-{phase}" points="{upper} {lower}" fill="{colour}" '
            'fill-opacity="0.15" stroke="none"/>'
        )
        for p in pts:
            x = sx(p.x)
            mid = (p.low + p.high) / 2 if all(map(math.isfinite, (p.low, p.high))) else None
            out.append(
                f'<g class="look"><title>look {p.number} ({phase}): '
                f"[{_num(p.low)}, {_num(p.high)}] {escape(p.outcome)}</title>"
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{sy(p.low):.1f}" y2="{sy(p.high):.1f}" '
                f'stroke="{colour}" stroke-width="2"/>'
            )
            if mid is not None:
                out.append(f'<circle cx="{x:.1f}" cy="{sy(mid):.1f}" r="3" fill="{colour}"/>')
            out.append("</g>")
    return out


def _marker_lines(markers: Sequence[Marker], sc: _Scale) -> list[str]:
    """Each marker's dashed line and label (labels staggered over three rows)."""
    colours = {"decision": "#7c3aed", "promotion": "#ea580c", "window": "#dc2626"}
    out = []
    for i, m in enumerate(markers):
        x = sc.sx(m.x)
        c = colours.get(m.kind, "#334155")
        # a label near the right edge is written to the left of its line
        right = x > LEFT + 0.6 * sc.pw
        tx, anchor = (x - 4, "end") if right else (x + 4, "start")
        out.append(
            f'<g class="marker marker-{m.kind}"><line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" '
            f'y2="{TOP + sc.ph}" stroke="{c}" stroke-width="1.5" stroke-dasharray="3 3"/>'
            f'<text x="{tx:.1f}" y="{TOP + 12 + 12 * (i % 3)}" text-anchor="{anchor}" '
            f'class="tick" fill="{c}">{escape(m.label)}</text></g>'
        )
    return out
