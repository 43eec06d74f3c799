"""Charts for reports as hand-written SVG: no plotting library on training servers, and SVG drops into
GitHub, CSDN, HTML and (via svg/inkscape) LaTeX alike.

`memory_chart` draws per-card memory over time for one run, with the card capacity as a dashed line;
`peaks_chart` draws each compared run's peak per card (max, with the mean over cards and the
prediction as markers) against its card capacity. Every text is XML-escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import Any

from zerodeck.core.capacity import DEVICE_SOURCES, card_capacity_gib

PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac")
W, H = 820, 420
ML, MR, MT, MB = 64, 150, 40, 60  # margins: room for axis labels and the legend on the right
MAX_POINTS = 2000  # per line: a 10-hour run sampled every second would otherwise be a 36,000-point path
PEAK_LABELS = 80  # extra height under the bar chart for slanted run labels
HOST_SOURCES = ("host",)


def _x(text: Any) -> str:
    return escape(str(text), quote=True)


def nice_ticks(hi: float, n: int = 5) -> list[float]:
    """Round tick values from 0 to at least `hi`."""
    if hi <= 0 or not math.isfinite(hi):
        return [0.0, 1.0]
    raw = hi / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    count = math.ceil(hi / step - 1e-9)
    return [round(i * step, 10) for i in range(count + 1)]


def _fmt(v: float) -> str:
    return str(int(v)) if v == int(v) else f"{v:g}"


def _frame(title: str, y_label: str, x_label: str, yticks: list[float], plot_w: int, plot_h: int,
           height: int = H) -> list[str]:
    top = yticks[-1] or 1.0
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" viewBox="0 0 {W} {height}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{W}" height="{height}" fill="#ffffff"/>',
        f'<text x="{W / 2:.0f}" y="22" text-anchor="middle" font-size="15">{_x(title)}</text>',
    ]
    for v in yticks:
        y = MT + plot_h - plot_h * v / top
        out.append(f'<line x1="{ML}" y1="{y:.1f}" x2="{ML + plot_w}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{ML - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(v)}</text>')
    out.append(f'<line x1="{ML}" y1="{MT}" x2="{ML}" y2="{MT + plot_h}" stroke="#444"/>')
    out.append(f'<line x1="{ML}" y1="{MT + plot_h}" x2="{ML + plot_w}" y2="{MT + plot_h}" stroke="#444"/>')
    out.append(f'<text x="16" y="{MT + plot_h / 2:.0f}" text-anchor="middle" '
               f'transform="rotate(-90 16 {MT + plot_h / 2:.0f})">{_x(y_label)}</text>')
    if x_label:
        out.append(f'<text x="{ML + plot_w / 2:.0f}" y="{height - 12}" text-anchor="middle">{_x(x_label)}</text>')
    return out


def memory_series(samples: Sequence[tuple[float, str, str, float | None, float | None]], *,
                  device: str | None = None, card_gb: float | None = None
                  ) -> tuple[dict[str, list[tuple[float, float]]], float | None]:
    """Telemetry rows (t, source, card, used_mb, total_mb) -> ({card label: [(t, GiB)]}, capacity GiB).

    Host memory is left out when card samples exist: it is another scale and another question. The
    capacity follows `core.capacity.card_capacity_gib` (a CPU rank's is the run's card_gb, never the
    host RAM its samples carry as their total), so the chart and compare draw the same line.
    """
    cards = [s for s in samples if s[1] not in HOST_SOURCES]
    use = cards or list(samples)
    series: dict[str, list[tuple[float, float]]] = {}
    totals: dict[str, float] = {}
    for t, source, card, used, total in use:
        if used is None:
            continue
        label = f"{source} {card}"
        series.setdefault(label, []).append((float(t), used / 1024.0))
        if total is not None:
            totals[source] = max(totals.get(source, 0.0), total)
    dev = [src for src in totals if src in DEVICE_SOURCES]
    cap = card_capacity_gib(device=device, card_gb=card_gb, source=dev[0] if dev else next(iter(totals), None),
                            total_mb=max(totals[d] for d in dev) if dev else None)
    return {k: downsample(v) for k, v in series.items()}, cap


def downsample(points: list[tuple[float, float]], limit: int = MAX_POINTS) -> list[tuple[float, float]]:
    """At most `limit` points per line, keeping each bucket's highest sample: a peak must stay visible."""
    if len(points) <= limit:
        return points
    size = math.ceil(len(points) / limit)
    return [max(points[i:i + size], key=lambda p: p[1]) for i in range(0, len(points), size)]


def memory_chart(series: dict[str, list[tuple[float, float]]], *, title: str,
                 capacity_gib: float | None = None) -> str:
    plot_w, plot_h = W - ML - MR, H - MT - MB
    points = [p for pts in series.values() for p in pts]
    t0 = min((p[0] for p in points), default=0.0)
    t1 = max((p[0] for p in points), default=1.0)
    span = (t1 - t0) or 1.0
    ymax = max([p[1] for p in points] + [capacity_gib or 0.0, 0.0])
    yticks = nice_ticks(ymax * 1.05 if ymax else 1.0)
    top = yticks[-1]
    out = _frame(title, "memory used per card (GiB)", "time since start (s)", yticks, plot_w, plot_h)
    ticks = nice_ticks(span, 6)
    step = ticks[1] - ticks[0]
    v = math.ceil(t0 / step - 1e-9) * step
    while v <= t1 + 1e-9:
        x = ML + plot_w * (v - t0) / span
        out.append(f'<line x1="{x:.1f}" y1="{MT + plot_h}" x2="{x:.1f}" y2="{MT + plot_h + 4}" stroke="#444"/>')
        out.append(f'<text x="{x:.1f}" y="{MT + plot_h + 16}" text-anchor="middle">{_fmt(round(v, 6))}</text>')
        v += step

    def xy(t: float, g: float) -> str:
        return f"{ML + plot_w * (t - t0) / span:.1f},{MT + plot_h - plot_h * g / top:.1f}"

    if capacity_gib:
        y = MT + plot_h - plot_h * capacity_gib / top
        out.append(f'<line x1="{ML}" y1="{y:.1f}" x2="{ML + plot_w}" y2="{y:.1f}" stroke="#c00" '
                   'stroke-dasharray="6 4"/>')
        out.append(f'<text x="{ML + plot_w - 4}" y="{y - 5:.1f}" text-anchor="end" fill="#c00">'
                   f'capacity {_x(_fmt(round(capacity_gib, 2)))} GiB</text>')
    for i, (label, pts) in enumerate(sorted(series.items())):
        color = PALETTE[i % len(PALETTE)]
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.6" '
                   f'points="{" ".join(xy(t, g) for t, g in pts)}"/>')
        ly = MT + 14 + 18 * i
        out.append(f'<line x1="{W - MR + 12}" y1="{ly - 4}" x2="{W - MR + 32}" y2="{ly - 4}" stroke="{color}" '
                   'stroke-width="3"/>')
        out.append(f'<text x="{W - MR + 38}" y="{ly}">{_x(label)}</text>')
    if not series:
        out.append(f'<text x="{ML + plot_w / 2:.0f}" y="{MT + plot_h / 2:.0f}" text-anchor="middle">'
                   "no memory samples recorded</text>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def peaks_chart(rows: Sequence[dict[str, Any]], *, title: str = "Peak memory per card vs capacity") -> str:
    """Bars: each run's max peak per card; a tick for the mean over cards, a diamond for the prediction,
    a red line over each bar for the card capacity."""
    # Taller than the memory chart: the run labels under the bars are slanted.
    height = H + PEAK_LABELS
    plot_w, plot_h = W - ML - MR, H - MT - MB
    vals = [v for r in rows for v in (r.get("peak_max_gib"), r.get("capacity_gib"), r.get("predicted_peak_gib"))
            if isinstance(v, int | float)]
    yticks = nice_ticks(max(vals, default=1.0) * 1.05)
    top = yticks[-1]
    out = _frame(title, "GiB per card", "", yticks, plot_w, plot_h, height)
    n = max(len(rows), 1)
    slot = plot_w / n
    bar = max(min(slot * 0.6, 60.0), 1.0)

    def y(v: float) -> float:
        return MT + plot_h - plot_h * v / top

    for i, r in enumerate(rows):
        cx = ML + slot * (i + 0.5)
        fits = r.get("outcome") in (None, "succeeded")
        color = PALETTE[0] if fits else PALETTE[2]
        peak, mean = r.get("peak_max_gib"), r.get("peak_mean_gib")
        cap, pred = r.get("capacity_gib"), r.get("predicted_peak_gib")
        label = f"#{r.get('id')} {r.get('name') or ''}".strip()
        tip = f"{label}: peak {peak} GiB, mean {mean} GiB, capacity {cap} GiB, outcome {r.get('outcome')}"
        if isinstance(peak, int | float):
            out.append(f'<rect x="{cx - bar / 2:.1f}" y="{y(peak):.1f}" width="{bar:.1f}" '
                       f'height="{MT + plot_h - y(peak):.1f}" fill="{color}"><title>{_x(tip)}</title></rect>')
        if isinstance(mean, int | float):
            out.append(f'<line x1="{cx - bar / 2:.1f}" y1="{y(mean):.1f}" x2="{cx + bar / 2:.1f}" '
                       f'y2="{y(mean):.1f}" stroke="#222" stroke-dasharray="3 2"/>')
        if isinstance(pred, int | float):
            py = y(pred)
            out.append(f'<path d="M{cx:.1f},{py - 5:.1f} l5,5 l-5,5 l-5,-5 z" fill="#f28e2b" stroke="#222" '
                       'stroke-width="0.5"/>')
        if isinstance(cap, int | float):
            w = min(slot * 0.9, bar + 16)
            out.append(f'<line x1="{cx - w / 2:.1f}" y1="{y(cap):.1f}" x2="{cx + w / 2:.1f}" y2="{y(cap):.1f}" '
                       'stroke="#c00" stroke-width="2"/>')
        if len(rows) <= 40:
            ty = MT + plot_h + 14
            out.append(f'<text x="{cx:.1f}" y="{ty}" text-anchor="end" font-size="10" '
                       f'transform="rotate(-30 {cx:.1f} {ty})">{_x(label[:30])}</text>')
    legend = [("rect", PALETTE[0], "peak max (fit)"), ("rect", PALETTE[2], "peak max (failed)"),
              ("dash", "#222", "mean over cards"), ("diamond", "#f28e2b", "predicted"),
              ("line", "#c00", "capacity")]
    for i, (shape, color, text) in enumerate(legend):
        ly = MT + 14 + 18 * i
        x0 = W - MR + 12
        if shape == "rect":
            out.append(f'<rect x="{x0}" y="{ly - 10}" width="20" height="10" fill="{color}"/>')
        elif shape == "diamond":
            out.append(f'<path d="M{x0 + 10},{ly - 10} l5,5 l-5,5 l-5,-5 z" fill="{color}"/>')
        else:
            dash = ' stroke-dasharray="3 2"' if shape == "dash" else ""
            out.append(f'<line x1="{x0}" y1="{ly - 5}" x2="{x0 + 20}" y2="{ly - 5}" stroke="{color}" '
                       f'stroke-width="2"{dash}/>')
        out.append(f'<text x="{x0 + 26}" y="{ly}">{text}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
