"""How one value reads for people: the single rule behind every human output.

`zerodeck runs`, `zerodeck compare` (terminal table, Markdown, HTML, LaTeX) and the TUI's cells all
format through `human`, so the same number never reads two ways. It lives outside `core/export`
because that package loads the comparison tables on import, which `zerodeck --help` must not pay.
CSV and JSON keep stored values and never come here.
"""

from __future__ import annotations

import math
from typing import Any

MISSING = "-"


def human(value: Any, unit: str | None = None) -> str:
    """No float noise, no exponent for ordinary sizes: >= 1000 whole, >= 1 two decimals, else 3 digits.
    A value whose unit is `%` reads as a percentage (`48.8%`), never as `48.80` or a fraction."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if unit == "%" and isinstance(value, int | float):
        return percent(float(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        a = abs(value)
        if a == 0:
            return "0"
        if a >= 1000:
            return f"{value:.0f}"
        if a >= 1:
            return f"{value:.2f}"
        return f"{value:.3g}"
    return str(value)


def gib(value: float | None) -> str:
    """A memory size given in GiB, in the unit that shows it: GiB from 1 GiB, else MiB, else KiB.

    A tiny model's terms are a few MiB: read as `0.00 GiB` they look like a planner that does nothing.
    """
    if value is None:
        return MISSING
    if not math.isfinite(value):
        return str(value)
    a = abs(value)
    if a == 0:
        return "0 GiB"
    if a >= 1:
        return f"{value:.2f} GiB"
    if a * 1024 >= 1:
        return f"{value * 1024:.1f} MiB"
    return f"{value * 1024 * 1024:.1f} KiB"


def percent(value: float | None) -> str:
    """A value already in percent (48.8 for 48.8 %): one decimal and the sign, never `48.80`."""
    if value is None:
        return MISSING
    if not math.isfinite(value):
        return str(value)
    return f"{value:.1f}%"
