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

import numpy as np
from zerodeck.core.export.chart_data import Curve, MemoryPanel, Points, thin
from zerodeck.core.export.charts_mpl import (
    FancyBboxPatch,
    Figure,
    FontProperties,
    Line2D,
    Patch,
    PolyCollection,
    ScaledTranslation,
    blended_transform_factory,
    rc_context,
)
from zerodeck.core.export.fonts import BASE_FAMILY, font_families, has_cjk, machine_cjk_family
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
LEGEND_CELL_EM = 0.62  # width of a character cell in font sizes (DejaVu Sans letters, digits; CJK: two cells)
LEGEND_COLUMN_GAP = 2.0  # font sizes between legend columns (matplotlib's columnspacing)
LEGEND_PITCH = 1.6  # font sizes from one legend row to the next (text height and labelspacing)
SAMPLE_EM = 2.0  # font sizes of line sample before a legend label
PAIR_SAMPLE_EM = 3.4  # a run's train and eval samples side by side
LABEL_CHARS = 30
# A title given its height stays there: matplotlib otherwise measures every y tick label once more
# before drawing, to lift the title over ticks at the top, which no chart here has.
TITLE_Y = 1.0
TICK_PAD_PT = 7.0  # where matplotlib puts a tick label: tick length plus pad, 3.5 pt each
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


class Fonts:
    """The font family of each text: DejaVu Sans, with the machine's CJK font behind it only for a text
    that holds CJK characters. Set per text, not for the whole chart: a fallback font makes matplotlib
    lay out every text against both fonts, a fifth of the time of a chart with many labels, for tick
    numbers and Latin names that never need it."""

    def __init__(self, families: list[str]) -> None:
        self.families = families

    def __call__(self, *texts: str) -> dict[str, Any]:
        """Keyword arguments for a text artist showing `texts` (a legend: all its labels)."""
        if len(self.families) > 1 and any(has_cjk(t) for t in texts):
            return {"fontfamily": self.families}
        return {}


@contextmanager
def _style(texts: Sequence[str], fmt: str, warn: Warn | None) -> Iterator[Fonts]:
    cjk = any(has_cjk(t) for t in texts)
    families = font_families(texts, fmt=fmt, cjk_family=machine_cjk_family() if cjk else None, warn=warn)
    with rc_context({"font.family": [BASE_FAMILY], "svg.fonttype": "none", "svg.hashsalt": "zerodeck",
                     "axes.unicode_minus": False,
                     # A `$` in a run name is a dollar sign, not the start of TeX math.
                     "text.parse_math": False, "axes.grid": True, "grid.color": "#d9d9d9",
                     "grid.linewidth": 0.6, "axes.titlesize": "large"}):
        yield Fonts(families)


def _save(fig: Figure, target: Path | BinaryIO, fmt: str) -> None:
    with warnings.catch_warnings():
        # Missing CJK glyphs: said once by fonts.font_families, not once per character.
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from")
        fig.savefig(target, format=fmt, dpi=DPI, metadata=_METADATA[fmt])


def _legend(ax: Any, font: Fonts, loc: str = "upper right",
            entries: tuple[Sequence[Any], Sequence[str]] | None = None) -> None:
    """Inside the axes for a few entries (at a fixed corner: `best` weighs every point of every line,
    a large share of the time for a 10,000-point curve); beside them, in columns, for many. `entries`
    (handles, labels) replaces the axes' own for a legend beside them: a handle may be a tuple of
    lines, drawn side by side before one label."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    if entries is not None:
        _side_legend(ax, font, *entries)
    elif len(handles) <= LEGEND_INSIDE:
        ax.legend(handles, labels, loc=loc, framealpha=0.9, prop={"size": "small", "family": _family(font, *labels)})
    else:
        _side_legend(ax, font, handles, labels)


def _family(font: Fonts, *texts: str) -> list[str]:
    return font(*texts).get("fontfamily", [BASE_FAMILY])


def _side_legend(ax: Any, font: Fonts, handles: Sequence[Any], labels: Sequence[str]) -> None:
    """Many entries beside the axes, drawn as plain artists in the columns `_figure` made room for:
    matplotlib's Legend lays out each entry's text five times over through its nested boxes, most
    of the time of a 50-run chart. Same look: a sample of the line with its marker in the middle,
    the label at its right, in a light rounded frame, the entries spread evenly over the columns."""
    fig = ax.get_figure()
    sample_em = PAIR_SAMPLE_EM if any(isinstance(h, tuple) and len(h) > 1 for h in handles) else SAMPLE_EM
    cols, col_in, fs = _side_columns(labels, sample_em)
    rows = math.ceil(len(handles) / cols)
    to_in = fig.dpi_scale_trans  # the layout is in inches from the figure's lower left corner
    box = ax.get_position()
    width, height = fig.get_size_inches()
    x0, top = (box.x0 + 1.01 * box.width) * width, box.y1 * height
    pitch = LEGEND_PITCH * fs
    frame_h = rows * pitch + 0.6 * fs
    fig.add_artist(FancyBboxPatch((x0, top - frame_h), cols * col_in - LEGEND_COLUMN_GAP * fs, frame_h,
                                  boxstyle=f"round,pad=0,rounding_size={0.2 * fs}", transform=to_in,
                                  facecolor="white", edgecolor="0.8", linewidth=1.0, alpha=0.8, zorder=5))
    for k, (handle, label) in enumerate(zip(handles, labels)):
        col, row = divmod(k, rows)
        x = x0 + 0.4 * fs + col * col_in
        y = top - 0.3 * fs - (row + 0.5) * pitch
        parts = handle if isinstance(handle, tuple) else (handle,)
        span = sample_em * fs / len(parts)
        for j, part in enumerate(parts):
            a, b = x + j * span + (0.3 * fs if j else 0.0), x + (j + 1) * span
            sample = Line2D([a, (a + b) / 2, b], [y, y, y])
            sample.update_from(part)  # colour, dashes, marker, alpha; also the axes' clip box, undone below
            sample.set(transform=to_in, markevery=[1], clip_on=False, zorder=6)
            fig.add_artist(sample)
        fig.text(x + (sample_em + 0.8) * fs, y, label, transform=to_in, fontsize="x-small", va="center_baseline",
                 zorder=6, **font(label))


def _side_columns(labels: Sequence[str], sample_em: float = SAMPLE_EM) -> tuple[int, float, float]:
    """(columns, inches per column, font size in inches) of a legend beside the axes: up to
    LEGEND_ROWS entries a column, each column as wide as its longest label needs (estimated from its
    character cells, so the figure's width is known before anything is drawn)."""
    fs = FontProperties(size="x-small").get_size_in_points() / 72.0
    cells = max((_cells(x) for x in labels), default=0)
    return (math.ceil(len(labels) / LEGEND_ROWS),
            (sample_em + 0.8 + LEGEND_CELL_EM * cells + LEGEND_COLUMN_GAP) * fs, fs)


def _cells(label: str) -> int:
    """Rough width in Latin characters: a CJK character is about two."""
    return sum(2 if has_cjk(ch) else 1 for ch in label)


def _short(label: str) -> str:
    """A run's label for a legend or an axis: control characters shown as escapes (SVG, an XML file,
    cannot even hold most of them), cut to LABEL_CHARS."""
    label = printable(label)
    return label if len(label) <= LABEL_CHARS else label[:LABEL_CHARS - 1] + "…"


def _finite(points: Points) -> Points:
    """A diverged run logs `nan` or `inf` loss: a gap in its line, not an axis stretched to infinity.
    Checked as one array (fifty runs of a thousand points each in a Python loop: a tenth of the chart)."""
    if not points:
        return []
    keep = np.isfinite(np.asarray(points, dtype=float)).all(axis=1)
    return list(points) if keep.all() else [p for p, ok in zip(points, keep) if ok]


def _figure(legend: Sequence[str] = (), height: float = SIZE[1], bottom: float = 0.6,
            sample_em: float = SAMPLE_EM, beside: bool = False) -> Figure:
    """A figure with fixed margins (in inches) and room on the right for a legend of many entries, or
    one put `beside` the axes whatever its length (`legend`: their labels). Fixed, not matplotlib's
    constrained layout: that measures every text twice, a third of the time of a simple chart, for
    margins that are the same on every chart of a kind."""
    extra = 0.0
    if legend and (beside or len(legend) > LEGEND_INSIDE):
        cols, col_in, _fs = _side_columns(legend, sample_em)
        extra = cols * col_in
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
             _("resumed"), _("train"), _("eval"), *(c.label for c in curves)]
    with _style(texts, fmt, warn) as font:
        resumed = any(c.resumes for c in curves)
        lines = []
        for c in curves:
            label, train, evals = _chain_label(c), _finite(c.train), _finite(c.eval)
            lines.append((c, train, evals, label, _("{run} train").format(run=label) if evals else label,
                          _("{run} eval").format(run=label)))
        legend = [x for _c, t, e, _l, train_label, eval_label in lines
                  for x in ([train_label] if t else []) + ([eval_label] if e else [])]
        # Beside the axes, a run with evaluations is one entry, its train line and its eval marks side
        # by side, under a key saying which is which: half the labels to read (and to lay out).
        grouped = len(legend) + resumed > LEGEND_INSIDE and any(e for _c, _t, e, *_labels in lines)
        if grouped:
            legend = [_("train"), _("eval"), *(label for _c, t, e, label, *_labels in lines if t or e)]
        # As wide as `_side_legend` will draw them: a pair where some run has both lines.
        paired = grouped and any(t and e for _c, t, e, *_labels in lines)
        fig = _figure([*legend, _("resumed")] if resumed else legend,
                      sample_em=PAIR_SAMPLE_EM if paired else SAMPLE_EM, beside=grouped)
        ax = fig.add_subplot()
        handles: list[Any] = []
        for i, (c, train, evals, _label, train_label, eval_label) in enumerate(lines):
            color, dash, marker = line_style(i)
            drawn: list[Line2D] = []
            if train:
                pts = thin(train)
                drawn += ax.plot([p[0] for p in pts], [p[1] for p in pts], color=color, linestyle=dash, linewidth=1.4,
                                 marker=marker, markersize=5, markevery=marks(len(pts), i, len(curves)),
                                 label=train_label)
                _resume_marks(ax, c.resumes, train, color)
            if evals:
                drawn += ax.plot([p[0] for p in evals], [p[1] for p in evals], color=color, linestyle=":",
                                 linewidth=1.0, marker=marker, markersize=7, fillstyle="none", markeredgewidth=1.4,
                                 label=eval_label)
            if drawn:
                handles.append(tuple(drawn))
        entries = None
        if grouped:
            key = [Line2D([], [], color="black", linewidth=1.4, marker="o", markersize=5),
                   Line2D([], [], color="black", linestyle=":", linewidth=1.0, marker="o", markersize=7,
                          fillstyle="none", markeredgewidth=1.4)]
            entries = ([*key, *handles], legend)
        if resumed:
            ring = ax.plot([], [], linestyle="none", marker="o", markersize=9, fillstyle="none", color="grey",
                           alpha=RESUME_ALPHA, label=_("resumed"))
            if entries is not None:
                entries = ([*entries[0], *ring], [*entries[1], _("resumed")])
        ax.set_title(printable(title), y=TITLE_Y, **font(title))
        ax.set_xlabel(_("step"), **font(_("step")))
        ax.set_ylabel(ylabel, **font(ylabel))
        _legend(ax, font, entries=entries)
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
    with _style(texts, fmt, warn) as font:
        fig = _figure((), height=max(SIZE[1], 2.6 * len(panels) + 1.2))
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
                ax.text(0.5, 0.5, _("no memory samples recorded"), transform=ax.transAxes, ha="center",
                        **font(_("no memory samples recorded")))
            ax.set_ylim(bottom=0)
            heading = _short(panel.label) if len(panels) > 1 else printable(title)
            ax.set_title(heading, fontsize="medium", y=TITLE_Y, **font(heading))
            ax.set_xlabel(xlabel, **font(xlabel))
            ax.set_ylabel(_("memory per card (GiB)"), **font(_("memory per card (GiB)")))
            _legend(ax, font, loc="lower right")
        if len(panels) > 1:
            fig.suptitle(printable(title), **font(title))
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
    with _style([title, _("GiB per card"), *legend, *labels], fmt, warn) as font:
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
        # One artist per kind of mark, not one per run (`ax.bar` makes a patch per bar, each added to
        # the data limits on its own): fifty runs draw as fast as five.
        for bad, color, hatch in ((False, FIT_COLOR, ""), (True, FAILED_COLOR, "///")):
            bars = [[(i - 0.3, 0.0), (i - 0.3, v), (i + 0.3, v), (i + 0.3, 0.0)]
                    for i in xs if failed[i] == bad and (v := peaks[i]) is not None]
            if bars:
                ax.add_collection(PolyCollection(bars, facecolors=color, edgecolors="black", linewidths=0.8,
                                                 hatch=hatch or None, zorder=2))
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
        ax.autoscale_view()
        names = [_short(x) for x in labels] if n <= RUN_LABELS else [f"#{r.get('id')}" for r in rows]
        _bar_names(ax, names, small=n <= RUN_LABELS, font=font)
        ax.set_xlim(-0.6, n - 0.4)
        ax.set_ylim(bottom=0)
        ax.grid(axis="x", visible=False)
        ax.set_ylabel(_("GiB per card"), **font(_("GiB per card")))
        ax.set_title(printable(title), y=TITLE_Y, **font(title))
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
                  borderaxespad=0.0, prop={"size": "small", "family": _family(font, *legend)})
        _save(fig, target, fmt)


def _bar_names(ax: Any, names: Sequence[str], *, small: bool, font: Fonts) -> None:
    """Each bar's run name under it, slanted when there are several, where a tick label would stand:
    plain texts, not matplotlib ticks (a tick is two lines and two texts, made and measured one by one,
    a third of the time of a 50-run chart). No tick marks: each name stands under its bar."""
    ax.set_xticks([])
    pad = ScaledTranslation(0.0, -TICK_PAD_PT / 72.0, ax.get_figure().dpi_scale_trans)
    at = blended_transform_factory(ax.transData, ax.transAxes) + pad
    slant = len(names) > 1
    for i, name in enumerate(names):
        ax.text(i, 0.0, name, transform=at, rotation=30 if slant else 0, ha="right" if slant else "center",
                va="top", rotation_mode="default", fontsize="small" if small else "x-small", **font(name))
