"""The live screen's card table: a header that names the source's own columns, one row per card,
die or CPU rank, the processes on each card, and the host line.

The columns follow the source: npu-smi's (HBM, AICore %, health), NVIDIA's (memory, utilisation) or a
CPU run's ranks (RSS, CPU %, the rank's process). Each row keeps its last drawn state and refreshes
itself only when that state changes, so a sixteen-die view at 1 Hz sends a slow SSH link just the
rows whose numbers moved.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual.widget import Widget
from zerodeck.core.i18n import _
from zerodeck.tui.view import CardView, HostView, ProcView, fmt_num
from zerodeck.tui.widgets.text import bar, gib, sparkline

MIN_SPARK = 8
MARK = 2  # " *": the followed run's card

# Per source kind: the columns before the bar and after it, as (header, width, align).
Col = tuple[str, int, str]
COLUMNS: dict[str, tuple[tuple[Col, ...], tuple[Col, ...]]] = {
    "npu": ((("NPU", 5, ">"), ("HBM used/total", 14, ">")),
            (("AICore%", 7, ">"), ("Temp", 5, ">"), ("Power", 6, ">"), ("Health", 7, "<"))),
    "gpu": ((("GPU", 5, ">"), ("Mem used/total", 14, ">")),
            (("Util%", 6, ">"), ("Temp", 5, ">"), ("Power", 6, ">"))),
    "cpu": ((("RANK", 5, ">"), ("RSS", 7, ">")),
            (("CPU%", 6, ">"), ("PID", 8, ">"), ("Command", 15, "<"))),
}


def _fixed(kind: str) -> int:
    pre, post = COLUMNS[kind]
    # cells, a space after each pre cell and before each post cell, the bar's own space, the mark
    return sum(c[1] for c in pre) + len(pre) + sum(c[1] for c in post) + len(post) + MARK


def widths(kind: str, width: int) -> tuple[int, int]:
    """The bar's and the history sparkline's widths at this terminal width (no sparkline when narrow)."""
    rest = max(6, width - _fixed(kind))
    bar_w = max(6, min(24, rest // 2))
    spark_w = rest - bar_w - 1
    return bar_w, spark_w if spark_w >= MIN_SPARK else 0


def _cells(cols: Sequence[Col], values: Sequence[str]) -> str:
    return " ".join(f"{v[:w]:{a}{w}}" for (_, w, a), v in zip(cols, values))


def header_text(kind: str, width: int) -> Text:
    pre, post = COLUMNS[kind]
    bar_w, spark_w = widths(kind, width)
    t = Text(_cells(pre, [c[0] for c in pre]) + " ", style="bold")
    t.append(f"{'':<{bar_w}}")
    if spark_w:
        t.append(" " + "history"[:spark_w].ljust(spark_w), style="dim")
    t.append(" " + _cells(post, [c[0] for c in post]) + " " * MARK, style="bold")
    return t


def card_text(kind: str, v: CardView, history: Sequence[float], mine: bool, width: int) -> Text:
    pre, post = COLUMNS[kind]
    bar_w, spark_w = widths(kind, width)
    key = v.key[4:] if kind == "cpu" and v.key.startswith("rank") else v.key
    if kind == "cpu":
        mem = f"{gib(v.used_mb)}G"
        tail = [fmt_num(v.util_pct, "{:.0f}%"), str(v.pids[0]) if v.pids else "-", v.name or "-"]
    else:
        mem = f"{gib(v.used_mb)}/{gib(v.total_mb)}G"
        tail = [fmt_num(v.util_pct, "{:.0f}%"), fmt_num(v.temp_c, "{:.0f}C"), fmt_num(v.power_w, "{:.0f}W")]
    t = Text()
    t.append(_cells(pre[:1], [key]), style="bold" if mine else "")
    t.append(" " + _cells(pre[1:], [mem]) + " ")
    t.append_text(bar(v.used_frac, bar_w))
    if spark_w:
        t.append(" ")
        t.append(sparkline(history, spark_w, 0.0, 1.0).ljust(spark_w), style="cyan")
    t.append(" " + _cells(post[:len(tail)], tail))
    if kind == "npu":
        health = v.health or "N/A"
        t.append(" ")
        t.append(_cells(post[-1:], [health]), style="green" if health == "OK" else "yellow")
    t.append(" *" if mine else "  ", style="bold")
    return t


class CardHeader(Widget):
    DEFAULT_CSS = "CardHeader { height: 1; }"

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.kind = "npu"

    def show(self, kind: str) -> None:
        if kind != self.kind:
            self.kind = kind
            self.refresh()

    def render(self) -> Text:
        return header_text(self.kind, self.size.width or 80)


class CardRow(Widget):
    DEFAULT_CSS = "CardRow { height: 1; }"

    def __init__(self, view: CardView, kind: str = "npu", **kw: Any) -> None:
        super().__init__(**kw)
        self.view = view
        self.kind = kind
        self.history: tuple[float, ...] = ()
        self.mine = False

    def show(self, view: CardView, history: Sequence[float], mine: bool) -> None:
        hist = tuple(history)[-120:]
        if (view, hist, mine) == (self.view, self.history, self.mine):
            return
        self.view, self.history, self.mine = view, hist, mine
        self.refresh()

    def render(self) -> Text:
        return card_text(self.kind, self.view, self.history, self.mine, self.size.width or 80)


def procs_text(kind: str, procs: Sequence[ProcView], width: int) -> Text:
    """The processes on the cards, nvitop's lower table: a CPU rank's children are listed under it
    with their own memory, labelled as not the rank's."""
    label = {"npu": "NPU", "gpu": "GPU", "cpu": "RANK"}[kind]
    mem = {"npu": "HBM", "gpu": "Mem", "cpu": "RSS"}[kind]
    t = Text(f"{label:>5} {'PID':>8} {'Process':<16} {mem:>7}", style="bold")
    for p in procs:
        card = p.card[4:] if kind == "cpu" and p.card.startswith("rank") else p.card
        name = ("└ " if p.child else "") + (p.name or "?")
        line = f"\n{card:>5} {p.pid:>8} {name[:16]:<16} {gib(p.mem_mb) + 'G':>7}"
        t.append(line[:width + 1], style="bold" if p.mine else "")
        note = "  child of rank: not in its RSS" if p.child else ("  *" if p.mine else "")
        room = width - (len(line) - 1)
        if note and room > 3:
            t.append(note[:room], style="dim")
    return t


class ProcList(Widget):
    DEFAULT_CSS = "ProcList { height: auto; }"

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.kind = "npu"
        self.procs: tuple[ProcView, ...] = ()

    def show(self, kind: str, procs: tuple[ProcView, ...]) -> None:
        if (kind, procs) == (self.kind, self.procs):
            return
        grow = len(procs) != len(self.procs)
        self.kind, self.procs = kind, procs
        self.display = bool(procs)
        self.refresh(layout=grow)

    def get_content_height(self, container: Any, viewport: Any, width: int) -> int:
        return 1 + len(self.procs) if self.procs else 0

    def render(self) -> Text:
        return procs_text(self.kind, self.procs, self.size.width or 80)


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
        t = Text(" " + _("host RAM") + " ", style="bold")
        if v is None:
            t.append("N/A", style="dim")
            return t
        frac = v.used_mb / v.total_mb if v.used_mb is not None and v.total_mb else None
        mem = f" {gib(v.used_mb)}/{gib(v.total_mb)}G"
        cpu = f"  CPU {fmt_num(v.cpu_pct, '{:.0f}%')}"
        rest = width - t.cell_len - len(mem) - len(cpu) - 1
        bar_w = max(6, min(24, rest // 2))
        t.append_text(bar(frac, bar_w))
        t.append(mem)
        t.append(cpu)
        spark_w = rest - bar_w - 1
        if spark_w >= MIN_SPARK:
            t.append(" ")
            t.append(sparkline(self.history, spark_w, 0.0, 1.0), style="cyan")
        return t
