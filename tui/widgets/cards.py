"""The live screen's rows: one per card, die or CPU rank, plus the host line.

Each row keeps its last drawn state and refreshes itself only when that state changes, so a
sixteen-die view at 1 Hz sends a slow SSH link just the rows whose numbers moved.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual.widget import Widget
from zerodeck.tui.view import CardView, HostView, fmt_num
from zerodeck.tui.widgets.text import bar, gib, sparkline

MIN_SPARK = 8


class CardRow(Widget):
    DEFAULT_CSS = "CardRow { height: 1; }"

    def __init__(self, view: CardView, **kw: Any) -> None:
        super().__init__(**kw)
        self.view = view
        self.history: tuple[float, ...] = ()
        self.mine = False

    def show(self, view: CardView, history: Sequence[float], mine: bool) -> None:
        hist = tuple(history)[-120:]
        if (view, hist, mine) == (self.view, self.history, self.mine):
            return
        self.view, self.history, self.mine = view, hist, mine
        self.refresh()

    def render(self) -> Text:
        v = self.view
        width = self.size.width or 80
        health = (v.health or "N/A")[:7]
        t = Text()
        t.append(f"{v.key:>5} ", style="bold" if self.mine else "")
        t.append(f"{health:<7} ", style="" if health == "OK" else "yellow")
        head_len = 5 + 1 + 8
        mem = " " + f"{gib(v.used_mb)}/{gib(v.total_mb)}G".rjust(12)
        tail = (f" {fmt_num(v.util_pct, '{:.0f}%'):>4} {fmt_num(v.temp_c, '{:.0f}C'):>4}"
                f" {fmt_num(v.power_w, '{:.0f}W'):>5}")
        mine = " *" if self.mine else "  "
        rest = width - head_len - len(mem) - len(tail) - len(mine)
        bar_w = max(6, min(24, rest // 2))
        spark_w = rest - bar_w - 1
        t.append_text(bar(v.used_frac, bar_w))
        t.append(mem)
        if spark_w >= MIN_SPARK:
            t.append(" ")
            t.append(sparkline(self.history, spark_w, 0.0, 1.0).ljust(spark_w), style="cyan")
        t.append(tail)
        t.append(mine, style="bold")
        return t


class HostRow(Widget):
    DEFAULT_CSS = "HostRow { height: 1; }"

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.view: HostView | None = None
        self.history: tuple[float, ...] = ()

    def show(self, view: HostView | None, history: Sequence[float]) -> None:
        hist = tuple(history)[-120:]
        if (view, hist) == (self.view, self.history):
            return
        self.view, self.history = view, hist
        self.refresh()

    def render(self) -> Text:
        v = self.view
        width = self.size.width or 80
        t = Text(" host RAM (offload) ", style="bold")
        if v is None:
            t.append("N/A", style="dim")
            return t
        frac = v.used_mb / v.total_mb if v.used_mb is not None and v.total_mb else None
        mem = f" {gib(v.used_mb)}/{gib(v.total_mb)}G"
        rest = width - len(t) - len(mem) - 2
        bar_w = max(6, min(24, rest // 2))
        t.append_text(bar(frac, bar_w))
        t.append(mem)
        spark_w = rest - bar_w - 1
        if spark_w >= MIN_SPARK:
            t.append(" ")
            t.append(sparkline(self.history, spark_w, 0.0, 1.0), style="cyan")
        return t
