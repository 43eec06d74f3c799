"""The plan's memory breakdown as horizontal bars against the card's capacity.

Every term of the total is drawn, headroom (the allocator's cache and rounding) included, so the
bars end where the total does; sizes read in the unit that shows them (MiB for a tiny model).
"""

from __future__ import annotations

from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual.widget import Widget
from zerodeck.core.i18n import _
from zerodeck.core.values import gib
from zerodeck.tui.widgets.text import VERDICT_STYLE, pad_cells, verdict_text

TERMS = ("weights", "gradients", "optimizer", "activations", "logits", "buffers", "runtime", "headroom")
VALUE_WIDTH = 10  # "1023.9 MiB", "123.45 GiB"


def plan_numbers(plan: Any) -> dict[str, Any]:
    """The `zerodeck plan --json` contract fields from a Plan object (or that JSON itself)."""
    if isinstance(plan, dict):
        data = plan
    else:
        to = getattr(plan, "to_json", None) or getattr(plan, "as_dict", None) or getattr(plan, "to_dict", None)
        data = to() if callable(to) else dict(getattr(plan, "__dict__", {}))
    per = data.get("per_card_gib") or {}
    breakdown = getattr(plan, "breakdown", None)
    if breakdown is not None:
        # The unrounded terms: rounded to 0.01 GiB a tiny model's terms would all read 0.
        per = {k: getattr(breakdown, k, None) for k in (*TERMS, "total")}
    return {"per_card_gib": {k: per.get(k) for k in (*TERMS, "total")}, "capacity_gib": data.get("capacity_gib"),
            "verdict": data.get("verdict"), "host_gib": data.get("host_gib"), "raw": data}


class PlanBars(Widget):
    DEFAULT_CSS = "PlanBars { height: auto; }"

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.numbers: dict[str, Any] | None = None

    def show(self, numbers: dict[str, Any]) -> None:
        self.numbers = numbers
        self.refresh(layout=True)

    def get_content_height(self, container: Any, viewport: Any, width: int) -> int:
        return len(TERMS) + 3

    def render(self) -> Text:
        if self.numbers is None:
            return Text(_("planning …"), style="dim")
        per = self.numbers["per_card_gib"]
        cap = self.numbers["capacity_gib"] or 0.0
        total = per.get("total") or sum(v or 0.0 for k, v in per.items() if k != "total")
        scale = max(cap, total) or 1.0
        width = max(10, (self.size.width or 80) - 12 - VALUE_WIDTH - 3)
        t = Text()
        offset = 0.0
        # Stacked: each term starts where the previous ended, so the bars read as one column of memory.
        for term in TERMS:
            v = per.get(term) or 0.0
            start = round(offset / scale * width)
            end = round((offset + v) / scale * width)
            t.append(f"{term:<12}")
            t.append(" " * start)
            t.append("█" * max(0, end - start) or ("▏" if v > 0 else ""), style="cyan")
            t.append(" " * max(0, width - max(end, start + (1 if v > 0 and end == start else 0))))
            t.append(f" {gib(v):>{VALUE_WIDTH}}\n")
            offset += v
        verdict = self.numbers.get("verdict")
        style = VERDICT_STYLE.get(verdict or "", "")
        filled = round(total / scale * width)
        cap_at = round(cap / scale * width) if cap else width
        line = Text("total".ljust(12))
        for i in range(width):
            ch = "█" if i < filled else "░"
            if i == cap_at - 1 and cap:
                ch = "│" if i >= filled else "┃"
            line.append(ch, style=style if i < filled else "dim")
        line.append(f" {gib(total):>{VALUE_WIDTH}}\n")
        t.append_text(line)
        label = " " + _("capacity {gib} GiB").format(gib=f"{cap:.1f}")
        pad = max(0, cap_at - 1)
        cells = cell_len(label)  # a translated label's CJK characters are two cells each
        if 12 + pad + 1 + cells > (self.size.width or 80):
            t.append(" " * 12 + " " * max(0, pad - cells + 1) + label.strip() + " ▲\n", style="dim")
        else:
            t.append(" " * 12 + " " * pad + "▲" + label + "\n", style="dim")
        t.append(pad_cells(_("verdict"), 12))
        t.append_text(verdict_text(verdict))
        return t
