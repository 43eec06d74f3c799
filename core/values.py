"""How one value reads for people: the single rule behind every human output.

`zerodeck runs`, `zerodeck compare` (terminal table, Markdown, HTML, LaTeX) and the TUI's cells all
format through `human`, so the same number never reads two ways. It lives outside `core/export`
because that package loads the comparison tables on import, which `zerodeck --help` must not pay.
CSV and JSON keep stored values and never come here.

Text is user data (recipe tags, names, a tool's error line): `printable` shows every control
character as a visible escape, so a tag holding `ESC ] 0 ; title BEL` or `ESC [ 2 J` can neither
retitle nor clear the terminal, nor hide itself in a report. `human` applies it to every string.
"""

from __future__ import annotations

import math
from typing import Any

MISSING = "-"


_NAMED = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}


def _escape(code: int) -> str:
    return _NAMED.get(code) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


# C0, DEL and C1 controls, and the bidirectional overrides that reorder what a reader sees
# ("Trojan Source"). Printable Unicode (Chinese model names) is untouched.
_CONTROLS = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), 0x200E, 0x200F, *range(0x202A, 0x202F),
             *range(0x2066, 0x206A)]
_TABLE = {c: _escape(c) for c in _CONTROLS}
_KEEP_CACHE: dict[str, dict[int, str]] = {"": _TABLE}


# What JSON text (ensure_ascii=False) may still hold raw: the C1 controls, which some terminals obey,
# and the bidirectional overrides. As \\u escapes they are the same JSON value.
_JSON_TABLE = {c: f"\\u{c:04x}" for c in _CONTROLS if c >= 0x80}


def json_safe(json_text: str) -> str:
    """Serialised JSON with those characters as \\u escapes (C0 ones json.dumps escapes itself)."""
    return json_text.translate(_JSON_TABLE)


def printable(text: str, keep: str = "") -> str:
    """`text` with each control character shown as `\\x1b` (or `\\u202e`). `keep` names the ones
    that mean something where the text goes: "\\n\\t" for a block of lines, nothing for a cell."""
    if text.isprintable():  # the common case: no work
        return text
    table = _KEEP_CACHE.get(keep)
    if table is None:
        table = _KEEP_CACHE[keep] = {c: e for c, e in _TABLE.items() if chr(c) not in keep}
    return text.translate(table)


def cell_width(text: str) -> int:
    """Terminal cells `text` takes: East Asian wide and fullwidth characters (a Chinese label) take two."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def pad_cells(text: str, width: int) -> str:
    """`text` and at least one space, to `width` cells: a label column that lines up in any language."""
    return text + " " * max(1, width - cell_width(text))


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
    return printable(value if isinstance(value, str) else str(value))


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
