"""Text drawing helpers shared by the widgets: bars, sparklines and the verdict/outcome colours.

Everything is plain characters plus a style, so a NO_COLOR terminal still reads every state from
the words (fits, TIGHT, OOM) and the bars' lengths.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from rich.cells import cell_len, set_cell_size
from rich.text import Text

SPARK = "▁▂▃▄▅▆▇█"

VERDICT_STYLE = {"fits": "green", "tight": "yellow", "oom": "bold red"}
OUTCOME_STYLE = {
    "succeeded": "green", "oom": "bold magenta", "comm_error": "red", "failed": "red", "killed": "yellow",
    "lost": "dim", "running": "cyan", "starting": "cyan", "queued": "dim",
}


def error_line(exc: BaseException) -> str:
    """An error as the one line a notification shows: a store that cannot be reached reads
    `store unreachable: HOST/DB (reason)`, never a repr or a traceback."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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


_JSON = json.JSONDecoder()


def fmt_lr(lr: float) -> str:
    """A learning rate as people write it: 1e-4, 2.5e-5, 0.01."""
    if lr == 0 or abs(lr) >= 0.01:
        return f"{lr:.3g}"
    mant, exp = f"{lr:.1e}".split("e")
    return f"{mant.rstrip('0').rstrip('.')}e{int(exp)}"


def log_line(line: str) -> str:
    """A log line as the live tail shows it: the trainer's `{"zerodeck": "step", ...}` JSON as
    `step 220/500  loss 1.2340  lr 1e-4  12.3 samples/s`; every other line as it was printed."""
    start = line.find('{"zerodeck"')
    if start < 0:
        return line.replace("\t", "    ")
    try:
        obj, _ = _JSON.raw_decode(line, start)
    except ValueError:
        return line
    if not isinstance(obj, dict):
        return line
    parts: list[str] = []
    kind = obj.get("zerodeck")
    num = (int, float)
    if kind == "step":
        total = obj.get("total_steps")
        parts.append(f"step {obj.get('step', '?')}" + (f"/{total}" if total is not None else ""))
        if isinstance(obj.get("loss"), num):
            parts.append(f"loss {obj['loss']:.4f}")
        if isinstance(obj.get("lr"), num):
            parts.append(f"lr {fmt_lr(obj['lr'])}")
        if isinstance(obj.get("samples_per_s"), num):
            parts.append(f"{obj['samples_per_s']:.1f} samples/s")
        if isinstance(obj.get("peak_mem_mb"), num):
            parts.append(f"peak {obj['peak_mem_mb'] / 1024:.1f}G")
    elif kind == "done":
        parts.append(f"done: {obj.get('steps', '?')} steps")
        if isinstance(obj.get("train_runtime"), num):
            parts.append(f"in {obj['train_runtime']:.1f}s")
        if isinstance(obj.get("train_loss"), num):
            parts.append(f"train loss {obj['train_loss']:.4f}")
        if isinstance(obj.get("samples_per_s"), num):
            parts.append(f"{obj['samples_per_s']:.1f} samples/s")
    else:
        return line
    return "  ".join(parts)


def pad_cells(text: str, width: int) -> str:
    """`text` padded with spaces to `width` terminal cells (ljust counts characters; CJK takes two cells)."""
    return text + " " * max(1, width - cell_len(text))


def crop(text: str, width: int) -> str:
    """One line cut to `width` cells with an ellipsis, never wrapped onto the next row."""
    if width <= 0:
        return ""
    # Cells, not characters: a CJK character is two cells wide and is never cut in half.
    if cell_len(text) <= width:
        return text
    return set_cell_size(text, max(0, width - 1)).rstrip(" ") + "…"
