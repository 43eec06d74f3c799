"""Text drawing helpers shared by the widgets: bars, sparklines and the verdict/outcome colours.

Everything is plain characters plus a style, so a NO_COLOR terminal still reads every state from
the words (fits, TIGHT, OOM) and the bars' lengths.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

SPARK = "▁▂▃▄▅▆▇█"

VERDICT_STYLE = {"fits": "green", "tight": "yellow", "oom": "bold red"}
OUTCOME_STYLE = {
    "succeeded": "green", "oom": "bold magenta", "comm_error": "red", "failed": "red", "killed": "yellow",
    "lost": "dim", "running": "cyan", "starting": "cyan", "queued": "dim",
}


def bar(frac: float | None, width: int, style: str = "") -> Text:
    width = max(1, width)
    if frac is None:
        return Text("·" * width, style="dim")
    filled = round(max(0.0, min(1.0, frac)) * width)
    t = Text("█" * filled, style=style or frac_style(frac))
    t.append("░" * (width - filled), style="dim")
    return t


def frac_style(frac: float) -> str:
    return "red" if frac >= 0.95 else "yellow" if frac >= 0.8 else "green"


def sparkline(values: Sequence[float], width: int, lo: float | None = None, hi: float | None = None) -> str:
    """The last `width` values as block characters, scaled to [lo, hi] (the values' range by default)."""
    if width <= 0 or not values:
        return ""
    vals = list(values)[-width:]
    lo = min(vals) if lo is None else lo
    hi = max(vals) if hi is None else hi
    span = hi - lo
    out = []
    for v in vals:
        i = 0 if span <= 0 else int((v - lo) / span * (len(SPARK) - 1) + 0.5)
        out.append(SPARK[max(0, min(len(SPARK) - 1, i))])
    return "".join(out)


def verdict_text(verdict: str | None) -> Text:
    if verdict is None:
        return Text("-", style="dim")
    word = {"fits": "fits", "tight": "TIGHT", "oom": "OOM"}.get(verdict, verdict)
    return Text(word, style=VERDICT_STYLE.get(verdict, ""))


def outcome_text(label: str | None) -> Text:
    if not label:
        return Text("-", style="dim")
    return Text(label.upper() if label == "oom" else label, style=OUTCOME_STYLE.get(label, ""))


def gib(mb: float | None) -> str:
    return "N/A" if mb is None else f"{mb / 1024:.1f}"
