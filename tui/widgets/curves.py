"""Training curves as terminal plots (textual-plotext): loss over steps with eval loss where the log
has it, and throughput over steps in a plot of its own (on one plot the throughput's jitter buries the
loss). People judge a run by its curve, in Live and in the run record.

A plot is rebuilt only when its points change, and while a run is going only when the new points
can move the drawing: at most every REDRAW_S, once the curve has grown by a braille column's worth
of its steps (about 1 % of a long run), or after MAX_WAIT_S at the latest. A rebuild costs 20-30 ms
of a core (plotext, then Textual reading its output): two plots rebuilt every 5 s were about 1 % of
a core (issue 12: the live view following a run went over 3 %). The progress line above the plots
shows the newest loss every second. An idle live view redraws nothing. A short
plot drops its title and axis label to keep the points.
"""

from __future__ import annotations

import time
from typing import Any

from textual.app import RenderResult
from textual.timer import Timer
from textual_plotext import PlotextPlot
from zerodeck.tui.view import Curves

MAX_POINTS = 400  # plotted per series: a terminal has fewer columns than that
REDRAW_S = 10.0  # the least time between two rebuilds of a growing curve
MAX_WAIT_S = 30.0  # the most time a grown curve waits for its rebuild
Points = tuple[tuple[int, float], ...]


def thin(points: Points, most: int = MAX_POINTS) -> Points:
    """At most `most` points, evenly kept, the last always included (the newest step is the one watched)."""
    if len(points) <= most:
        return points
    stride = len(points) / most
    kept = [points[int(i * stride)] for i in range(most - 1)]
    return (*kept, points[-1])


class CurvesPlot(PlotextPlot):
    """`series="loss"`: loss and eval loss; `series="throughput"`: samples/s."""

    DEFAULT_CSS = "CurvesPlot { height: 1fr; min-height: 4; }"

    def __init__(self, series: str = "loss", **kw: Any) -> None:
        super().__init__(**kw)
        self.series = series
        self.curves = Curves()
        self._title = ""
        self._drawn_at = 0.0
        self._pending: Curves | None = None
        self._flush_timer: Timer | None = None
        self._flush_due: float | None = None
        self._draw()

    def show(self, curves: Curves) -> None:
        if curves == (self._pending or self.curves):
            return
        if self.curves and curves and self._grows(curves):  # redrawn a little later, once
            now = time.monotonic()
            due = self._drawn_at + (REDRAW_S if self._visible_change(curves) else MAX_WAIT_S)
            if due > now:
                self._pending = curves
                if self._flush_due is None or due < self._flush_due:
                    if self._flush_timer is not None:
                        self._flush_timer.stop()
                    self._flush_timer, self._flush_due = self.set_timer(due - now, self._flush), due
                return
        self._pending = None
        self._replot(curves)

    def _series(self, c: Curves) -> Points:
        return c.samples_per_s if self.series == "throughput" else c.loss

    def _grows(self, curves: Curves) -> bool:
        """The same run's curve with points added (not another run's, not a reset)."""
        old, new = self._series(self.curves), self._series(curves)
        return bool(old) and len(new) >= len(old) and new[:1] == old[:1]

    def _visible_change(self, curves: Curves) -> bool:
        """Enough new points to move the drawing by a braille column (two per cell) at this width, or
        a new eval point (few, and each one matters)."""
        old, new = self._series(self.curves), self._series(curves)
        if len(curves.eval_loss) != len(self.curves.eval_loss):
            return True
        columns = max(2 * (self.size.width or 40), 1)
        return len(new) - len(old) >= max(1, len(old) // columns)

    def _flush(self) -> None:
        self._flush_timer, self._flush_due = None, None
        if self._pending is not None:
            curves, self._pending = self._pending, None
            self._replot(curves)

    def _replot(self, curves: Curves) -> None:
        self.curves = curves
        self._drawn_at = time.monotonic()
        self._draw()
        self.refresh()

    def _draw(self) -> None:
        plt = self.plt
        plt.clear_figure()
        c = self.curves
        steps = [s for s, _ in (c.samples_per_s if self.series == "throughput" else c.loss + c.eval_loss)]
        if steps:  # whole steps on the x axis, not 55.8
            lo, hi = min(steps), max(steps)
            plt.xticks(sorted({round(lo + (hi - lo) * k / 4) for k in range(5)}))
        if self.series == "throughput":
            sps = thin(c.samples_per_s)
            if sps:
                plt.plot([s for s, _ in sps], [v for _, v in sps], color="yellow", marker="braille")
            self._title = f"samples/s {sps[-1][1]:.1f}" if sps else "no throughput points yet"
            return
        loss, evals = thin(c.loss), thin(c.eval_loss)
        if loss:
            plt.plot([s for s, _ in loss], [v for _, v in loss], label="loss" if evals else None, color="cyan",
                     marker="braille")
        if evals:
            plt.plot([s for s, _ in evals], [v for _, v in evals], label="eval loss", color="magenta", marker="dot")
        title = f"loss {loss[-1][1]:.4f}" if loss else "no loss points yet"
        if evals:
            title += f"  eval loss {evals[-1][1]:.4f}"
        self._title = title

    def _decorate(self, height: int) -> None:
        self.plt.title(self._title if height >= 8 or not (self.curves.loss or self.curves.samples_per_s) else "")
        self.plt.xlabel("step" if height >= 12 else "")

    def render(self) -> RenderResult:
        self._decorate(self.size.height)
        return super().render()

    def plot_text(self, width: int, height: int) -> str:
        """The plot as plain text at this size (tests assert on what a user would see)."""
        self._decorate(height)
        self.plt.plotsize(width, height)
        self.plt._set_size(width, height)  # textual-plotext does the same before each build
        return str(self.plt.build())
