"""Training curves as a terminal plot (textual-plotext): loss over steps, eval loss where the log has
it, and throughput on the right axis. People judge a run by its curve, in Live and in the run record.

The plot is rebuilt only when the points change: rendering it costs a few milliseconds, and an idle
live view redraws nothing.
"""

from __future__ import annotations

from typing import Any

from textual_plotext import PlotextPlot
from zerodeck.tui.view import Curves

MAX_POINTS = 400  # plotted per series: a terminal has fewer columns than that


def thin(points: tuple[tuple[int, float], ...], most: int = MAX_POINTS) -> tuple[tuple[int, float], ...]:
    """At most `most` points, evenly kept, the last always included (the newest step is the one watched)."""
    if len(points) <= most:
        return points
    stride = len(points) / most
    kept = [points[int(i * stride)] for i in range(most - 1)]
    return (*kept, points[-1])


class CurvesPlot(PlotextPlot):
    DEFAULT_CSS = "CurvesPlot { height: 1fr; min-height: 5; }"

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.curves = Curves()
        self._draw()

    def show(self, curves: Curves) -> None:
        if curves == self.curves:
            return
        self.curves = curves
        self._draw()
        self.refresh()

    def _draw(self) -> None:
        plt = self.plt
        plt.clear_figure()
        c = self.curves
        plt.xlabel("step")
        if not c:
            plt.title("no loss points yet")
            return
        loss, evals, sps = thin(c.loss), thin(c.eval_loss), thin(c.samples_per_s)
        if loss:
            plt.plot([s for s, _ in loss], [v for _, v in loss], label="loss", color="cyan", marker="braille")
        if evals:
            plt.plot([s for s, _ in evals], [v for _, v in evals], label="eval loss", color="magenta",
                     marker="dot")
        if sps:
            plt.plot([s for s, _ in sps], [v for _, v in sps], label="samples/s", color="yellow",
                     marker="braille", yside="right")
        last = f"loss {loss[-1][1]:.4f}" if loss else ""
        if evals:
            last += f"  eval {evals[-1][1]:.4f}"
        if sps:
            last += f"  {sps[-1][1]:.1f} samples/s"
        plt.title(last.strip())

    def plot_text(self, width: int, height: int) -> str:
        """The plot as plain text at this size (tests assert on what a user would see)."""
        self.plt.plotsize(width, height)
        self.plt._set_size(width, height)  # textual-plotext does the same before each build
        return str(self.plt.build())
