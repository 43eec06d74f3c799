"""Charts for reports, drawn with matplotlib: PNG pastes into the documents reports are written in,
SVG into web pages, PDF into LaTeX. Imported only by the chart commands (`zerodeck chart`,
`compare --chart`): matplotlib takes about half a second to import, which `zerodeck --help` and every
other command must not pay.

Every chart reads in black and white: each line has its own dash pattern and marker as well as a
colour, failed runs' bars are hatched, capacity is a thick dashed black line. Text keeps its look
(DejaVu Sans) and falls back to a CJK font found on the machine for Chinese names (`fonts.py`). SVG
keeps text as text (searchable, editable); SVG and PDF carry no date, so the same runs give the same
file.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import matplotlib
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from zerodeck.core.export.chart_data import Curve, MemoryPanel, Points, thin
from zerodeck.core.export.fonts import font_families, has_cjk, machine_cjk_family
from zerodeck.core.i18n import _
from zerodeck.core.values import printable

DPI = 120
SIZE = (9.0, 5.0)  # inches: 1080 x 600 pixels at DPI, wide enough for a document page
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
          "#17becf")
LINESTYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "x", "P", "*", "<", ">", "h")
MARKS_PER_LINE = 8
LEGEND_INSIDE = 12  # legend entries that fit inside the axes; more go beside them
LEGEND_ROWS = 30  # entries per legend column beside the axes
LEGEND_COLUMN_IN = 2.4  # inches per legend column beside the axes
LABEL_CHARS = 30
RUN_LABELS = 40  # above this many runs the peaks chart names bars by run id only
FIT_COLOR, FAILED_COLOR = "#a6cee3", "#f4a582"
RESUME_ALPHA = 0.45  # the resume marks stay lighter than the lines they sit on
_METADATA: dict[str, dict[str, Any]] = {"png": {"Software": "zerodeck"}, "svg": {"Date": None},
                                        "pdf": {"CreationDate": None, "Creator": "zerodeck"}}

Warn = Callable[[str], None]


def line_style(i: int) -> tuple[str, str, str]:
    """(colour, dash pattern, marker) of the i-th line: the first 44 differ in pattern or marker alone."""
    return COLORS[i % len(COLORS)], LINESTYLES[i % len(LINESTYLES)], MARKERS[i % len(MARKERS)]


def marks(n_points: int, i: int, lines: int) -> tuple[int, int]:
    """`markevery` for line i of `lines`: about 8 markers, each line's shifted so lines that lie on top
    of each other still show every marker."""
    step = max(1, n_points // MARKS_PER_LINE)
    return (step * i // max(1, lines)) % step, step


def gib_text(v: float) -> str:
    return f"{round(v, 2):g}"


@contextmanager
def _style(texts: Sequence[str], fmt: str, warn: Warn | None) -> Iterator[None]:
    cjk = any(has_cjk(t) for t in texts)
    families = font_families(texts, fmt=fmt, cjk_family=machine_cjk_family() if cjk else None, warn=warn)
    with matplotlib.rc_context({"font.family": families, "svg.fonttype": "none", "svg.hashsalt": "zerodeck",
                                "axes.unicode_minus": False,
                                # A `$` in a run name is a dollar sign, not the start of TeX math.
                                "text.parse_math": False, "axes.grid": True, "grid.color": "#d9d9d9",
                                "grid.linewidth": 0.6, "axes.titlesize": "large"}):
        yield


def _save(fig: Figure, target: Path | BinaryIO, fmt: str) -> None:
    with warnings.catch_warnings():
        # Missing CJK glyphs: said once by fonts.font_families, not once per character.
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from")
        fig.savefig(target, format=fmt, dpi=DPI, metadata=_METADATA[fmt])


def _legend(ax: Any, loc: str = "upper right") -> None:
    """Inside the axes for a few entries (at a fixed corner: `best` weighs every point of every line,
    a large share of the time for a 10,000-point curve); beside them, in columns, for many."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    if len(handles) <= LEGEND_INSIDE:
        ax.legend(handles, labels, loc=loc, fontsize="small", framealpha=0.9)
    else:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="x-small",
                  ncols=_legend_columns(len(handles)), borderaxespad=0.0)


def _legend_columns(entries: int) -> int:
    return math.ceil(entries / LEGEND_ROWS)


def _cells(label: str) -> int:
    """Rough width in Latin characters: a CJK character is about two."""
    return sum(2 if has_cjk(ch) else 1 for ch in label)


def _short(label: str) -> str:
    """A run's label for a legend or an axis: control characters shown as escapes (SVG, an XML file,
    cannot even hold most of them), cut to LABEL_CHARS."""
    label = printable(label)
    return label if len(label) <= LABEL_CHARS else label[:LABEL_CHARS - 1] + "…"


def _finite(points: Points) -> Points:
    """A diverged run logs `nan` or `inf` loss: a gap in its line, not an axis stretched to infinity."""
    return [p for p in points if math.isfinite(p[0]) and math.isfinite(p[1])]


def _figure(n_legend: int = 0, height: float = SIZE[1], bottom: float = 0.6) -> Figure:
    """A figure with fixed margins (in inches) and room on the right for a legend of many entries.
    Fixed, not matplotlib's constrained layout: that measures every text twice, a third of the time
    of a simple chart, for margins that are the same on every chart of a kind."""
    extra = 0.0 if n_legend <= LEGEND_INSIDE else LEGEND_COLUMN_IN * _legend_columns(n_legend)
    width = SIZE[0] + extra
    fig = Figure(figsize=(width, height), dpi=DPI)
    fig.subplots_adjust(left=0.8 / width, right=1 - (0.25 + extra) / width, top=1 - 0.45 / height,
                        bottom=bottom / height, hspace=0.55)
    return fig


def _chain_label(c: Curve) -> str:
    """The line's label; a resume chain's names the runs it resumed, kept whole however long the name."""
    label = _short(c.label)
    if not c.resumed_from:
        return label
    return _("{run} (resumed from {runs})").format(run=label, runs=", ".join(f"#{r}" for r in c.resumed_from))


def _resume_marks(ax: Any, steps: Sequence[float], points: Points, color: str) -> None:
    """A light ring on the line, and a faint vertical rule, at each step where a resumed run took over."""
    if not steps:
        return
    at = dict(points)
    ring = [(s, at[s]) for s in steps if s in at]
    for s in steps:
        ax.axvline(s, color=color, linestyle=":", linewidth=0.9, alpha=RESUME_ALPHA, zorder=1)
    if ring:
        ax.plot([p[0] for p in ring], [p[1] for p in ring], linestyle="none", marker="o", markersize=9,
                fillstyle="none", markeredgewidth=1.2, color=color, alpha=RESUME_ALPHA, zorder=3)


def curves_chart(curves: Sequence[Curve], target: Path | BinaryIO, fmt: str, *, title: str, ylabel: str,
                 warn: Warn | None = None) -> None:
    """Train (and eval) lines by step, one style per run, several runs overlaid; a resume chain is one
    line with a light mark where each resumed run took over."""
    texts = [title, ylabel, _("step"), _("{run} train"), _("{run} eval"), _("{run} (resumed from {runs})"),
             _("resumed"), *(c.label for c in curves)]
    with _style(texts, fmt, warn):
        resumed = any(c.resumes for c in curves)
        entries = sum(1 + bool(c.eval) for c in curves) + resumed
        fig = _figure(entries)
        ax = fig.add_subplot()
        for i, c in enumerate(curves):
            color, dash, marker = line_style(i)
            label = _chain_label(c)
            train, evals = _finite(c.train), _finite(c.eval)
            if train:
                pts = thin(train)
                ax.plot([p[0] for p in pts], [p[1] for p in pts], color=color, linestyle=dash, linewidth=1.4,
                        marker=marker, markersize=5, markevery=marks(len(pts), i, len(curves)),
                        label=_("{run} train").format(run=label) if evals else label)
                _resume_marks(ax, c.resumes, train, color)
            if evals:
                ax.plot([p[0] for p in evals], [p[1] for p in evals], color=color, linestyle=":", linewidth=1.0,
                        marker=marker, markersize=7, fillstyle="none", markeredgewidth=1.4,
                        label=_("{run} eval").format(run=label))
        if resumed:
            ax.plot([], [], linestyle="none", marker="o", markersize=9, fillstyle="none", color="grey",
                    alpha=RESUME_ALPHA, label=_("resumed"))
        ax.set_title(printable(title))
        ax.set_xlabel(_("step"))
        ax.set_ylabel(ylabel)
        _legend(ax)
        _save(fig, target, fmt)


def _time_unit(span_s: float) -> tuple[float, str]:
    if span_s >= 3 * 3600:
        return 3600.0, _("time since start (h)")
    if span_s >= 3 * 60:
        return 60.0, _("time since start (min)")
    return 1.0, _("time since start (s)")


def memory_chart(panels: Sequence[MemoryPanel], target: Path | BinaryIO, fmt: str, *, title: str,
                 warn: Warn | None = None) -> None:
    """Per-card memory over time, one panel per run, the card capacity as a dashed black line."""
    texts = [title, _("memory per card (GiB)"), _("time since start (s)"), _("capacity {gib} GiB"),
             _("no memory samples recorded"), *(p.label for p in panels), *(k for p in panels for k in p.series)]
    with _style(texts, fmt, warn):
        fig = _figure(0, height=max(SIZE[1], 2.6 * len(panels) + 1.2))
        if len(panels) > 1:
            fig.subplots_adjust(top=1 - 0.8 / fig.get_figheight())
        axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
        for ax, panel in zip(axes, panels):
            times = [t for pts in panel.series.values() for t, _g in pts]
            t0 = min(times, default=0.0)
            scale, xlabel = _time_unit(max(times, default=0.0) - t0)
            for i, (card, pts) in enumerate(sorted(panel.series.items())):
                color, dash, marker = line_style(i)
                ax.plot([(t - t0) / scale for t, _g in pts], [g for _t, g in pts], color=color, linestyle=dash,
                        linewidth=1.4, marker=marker, markersize=4,
                        markevery=marks(len(pts), i, len(panel.series)),
                        label=printable(card))
            if panel.capacity_gib:
                ax.axhline(panel.capacity_gib, color="black", linestyle="--", linewidth=2.0,
                           label=_("capacity {gib} GiB").format(gib=gib_text(panel.capacity_gib)))
            if not panel.series:
                ax.text(0.5, 0.5, _("no memory samples recorded"), transform=ax.transAxes, ha="center")
            ax.set_ylim(bottom=0)
            ax.set_title(_short(panel.label) if len(panels) > 1 else printable(title), fontsize="medium")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(_("memory per card (GiB)"))
            _legend(ax, loc="lower right")
        if len(panels) > 1:
            fig.suptitle(printable(title))
        _save(fig, target, fmt)


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) else None


def peaks_chart(rows: Sequence[dict[str, Any]], target: Path | BinaryIO, fmt: str, *, title: str | None = None,
                warn: Warn | None = None) -> None:
    """Each run's highest card peak as a bar (hatched when the run failed), the mean over its cards and
    the planner's prediction as markers, and its card capacity (compare's `capacity_gib`, from
    `core.capacity`) as a dashed black line over the bar. Rows with a `label` are one run's cards
    (`chart_data.card_peak_rows`): a bar per card."""
    title = title or _("Peak memory per card vs capacity")
    labels = [r.get("label") or f"#{r.get('id')} {r.get('name') or ''}".strip() for r in rows]
    per_card = any("label" in r for r in rows)
    legend = [_("peak (run succeeded)") if per_card else _("peak, highest card (succeeded)"),
              _("peak (run failed)") if per_card else _("peak, highest card (failed)"), _("mean over cards"),
              _("predicted"), _("card capacity")]
    with _style([title, _("GiB per card"), *legend, *labels], fmt, warn):
        n = len(rows)
        width, height = max(SIZE[0], min(24.0, 0.32 * n + 4)), SIZE[1] + 1.0
        longest = max((_cells(_short(x)) for x in labels), default=0) if n <= RUN_LABELS else 4
        fig = Figure(figsize=(width, height), dpi=DPI)
        # The slanted run names hang below the axes; the legend stands to their right.
        fig.subplots_adjust(left=0.8 / width, right=1 - 2.7 / width, top=1 - 0.45 / height,
                            bottom=min(0.45, (0.45 + 0.042 * longest) / height))
        ax = fig.add_subplot()
        xs = list(range(n))
        peaks = [_num(r.get("peak_max_gib")) for r in rows]
        failed = [r.get("outcome") not in (None, "succeeded") for r in rows]
        # One artist per kind of mark, not one per run: fifty runs draw as fast as five.
        for bad, color, hatch in ((False, FIT_COLOR, ""), (True, FAILED_COLOR, "///")):
            pick = [i for i in xs if failed[i] == bad and peaks[i] is not None]
            if pick:
                ax.bar(pick, [float(peaks[i] or 0.0) for i in pick], width=0.6, color=color, edgecolor="black",
                       linewidth=0.8, hatch=hatch, zorder=2)
        marks_of: tuple[tuple[str, dict[str, Any]], ...] = (
            ("peak_mean_gib", {"marker": "_", "markersize": 16, "markeredgewidth": 2.2, "color": "black", "zorder": 3}),
            ("predicted_peak_gib", {"marker": "D", "markersize": 6, "markerfacecolor": "white",
                                    "markeredgecolor": "black", "zorder": 4}))
        for key, style in marks_of:
            marks = [(i, v) for i, r in enumerate(rows) if (v := _num(r.get(key))) is not None]
            if marks:
                ax.plot([i for i, _v in marks], [v for _i, v in marks], linestyle="none", **style)
        caps = [(i, v) for i, r in enumerate(rows) if (v := _num(r.get("capacity_gib"))) is not None]
        if caps:
            ax.hlines([v for _i, v in caps], [i - 0.42 for i, _v in caps], [i + 0.42 for i, _v in caps],
                      colors="black", linestyles="--", linewidth=2.0, zorder=4)
        ax.set_xticks(range(n))
        names = [_short(x) for x in labels] if n <= RUN_LABELS else [f"#{r.get('id')}" for r in rows]
        ax.set_xticklabels(names, rotation=30 if n > 1 else 0, ha="right" if n > 1 else "center",
                           fontsize="small" if n <= RUN_LABELS else "x-small")
        ax.set_xlim(-0.6, n - 0.4)
        ax.set_ylim(bottom=0)
        ax.grid(axis="x", visible=False)
        ax.set_ylabel(_("GiB per card"))
        ax.set_title(printable(title))
        proxies = [
            Patch(facecolor=FIT_COLOR, edgecolor="black", label=legend[0]),
            Patch(facecolor=FAILED_COLOR, edgecolor="black", hatch="///", label=legend[1]),
            Line2D([], [], linestyle="none", marker="_", markersize=12, markeredgewidth=2.2, color="black",
                   label=legend[2]),
            Line2D([], [], linestyle="none", marker="D", markerfacecolor="white", markeredgecolor="black",
                   label=legend[3]),
            Line2D([], [], color="black", linestyle="--", linewidth=2.0, label=legend[4]),
        ]
        # Only what the chart shows: a run's own cards have no mean over cards; a run may have no prediction.
        shown = [proxies[0] if not all(failed) else None, proxies[1] if any(failed) else None,
                 proxies[2] if any(_num(r.get("peak_mean_gib")) is not None for r in rows) else None,
                 proxies[3] if any(_num(r.get("predicted_peak_gib")) is not None for r in rows) else None,
                 proxies[4] if caps else None]
        ax.legend(handles=[h for h in shown if h is not None], loc="upper left", bbox_to_anchor=(1.02, 1.0),
                  fontsize="small", borderaxespad=0.0)
        _save(fig, target, fmt)
