"""Plain-text exports: the terminal table, Markdown (GitHub, CSDN), CSV (RFC 4180, Excel) and JSON.

People's formats (terminal, Markdown) round numbers for reading; CSV and JSON keep the stored
values so a spreadsheet or a script computes with the real numbers. Control characters in user text
(a tag holding a terminal escape) are shown as visible escapes (`\x1b`) in every format people read:
the terminal table, Markdown and, through `text_cells`, HTML and LaTeX; in CSV too (a spreadsheet is
read by people), keeping the tab and line breaks a quoted cell may hold; JSON escapes them itself
(C1 and bidi ones through `json_safe`).
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import re
from collections.abc import Callable
from typing import Any

from zerodeck.core.compare.fields import REPRODUCE, Column
from zerodeck.core.compare.table import Table
from zerodeck.core.values import human, json_safe, printable

JSON_SCHEMA_VERSION = 1


def _text(value: Any) -> str:
    return human(value)


def _escaped(escape: Callable[[str], str]) -> Callable[[Any], str]:
    def fmt(value: Any) -> str:
        return escape(human(value))

    return fmt


def plain(text: str) -> str:
    """A title, header or note of a human format: one line, controls shown."""
    return printable(text)


def _escaped_percent(escape: Callable[[str], str]) -> Callable[[Any], str]:
    def fmt(value: Any) -> str:
        return escape(human(value, "%"))

    return fmt


def text_cells(table: Table, cols: list[Column], escape: Callable[[str], str] | None = None) -> list[list[str]]:
    """Every cell as people read it; text cells through `escape`, numbers need none."""
    fmts: list[Callable[[Any], str]] = []
    for c in cols:
        if c.numeric and escape is not None and c.unit == "%":
            # `48.8%`: LaTeX reads a bare % as a comment, so percentages pass through the escape too.
            fmts.append(_escaped_percent(escape))
        elif c.numeric:
            fmts.append(functools.partial(human, unit=c.unit))
        elif escape is None:
            fmts.append(_text)
        else:
            fmts.append(_escaped(escape))
    pairs = list(zip([c.key for c in cols], fmts))
    return [[f(r.get(k)) for k, f in pairs] for r in table.rows]


def to_text(table: Table) -> str:
    """An aligned table for the terminal; the long reproduce columns are left to the other formats."""
    cols = [c for c in table.dropping_empty().columns if c.key not in REPRODUCE]
    cells = text_cells(table, cols)
    heads = [plain(c.header) for c in cols]
    widths = [len(h) for h in heads]
    for row in cells:
        for i, v in enumerate(row):
            if len(v) > widths[i]:
                widths[i] = len(v)

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if c.numeric else v.ljust(w) for v, w, c in zip(values, widths, cols)).rstrip()

    return "\n".join([line(heads), *(line(r) for r in cells)]) + "\n"


_MD_TABLE = str.maketrans({**{ch: "\\" + ch for ch in "\\`*_[]|<>#"}, "\r": " ", "\n": " "})


def md_escape(text: str) -> str:
    """Literal text inside a Markdown table cell: no emphasis, links, HTML or column breaks."""
    return printable(text, keep="\r\n").translate(_MD_TABLE)


def _fence(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def to_markdown(table: Table) -> str:
    cols = [c for c in table.dropping_empty().columns if c.key not in REPRODUCE]
    out = [f"### {md_escape(table.title)}", ""]
    out.append("| " + " | ".join(md_escape(c.header) for c in cols) + " |")
    out.append("|" + "|".join("---:" if c.numeric else "---" for c in cols) + "|")
    for row in text_cells(table, cols, md_escape):
        out.append("| " + " | ".join(row) + " |")
    for note in table.notes:
        out += ["", f"*{md_escape(note)}*"]
    repro = [r for r in table.rows if r.get("command") or r.get("env")]
    if repro and table.kind == "compare":
        out += ["", "#### Reproduce"]
        for r in repro:
            text = printable(" ".join(x for x in (r.get("env"), r.get("command")) if x))
            fence = _fence(text)
            out += ["", f"Run {r.get('id')} ({md_escape(str(r.get('name')))}):", "", f"{fence}sh", text, fence]
    return "\n".join(out) + "\n"


_FORMULA_START = ("=", "+", "@", "\t", "\r")


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    text = printable(str(value), keep="\t\n\r")
    # A cell starting like a formula would run in Excel; the quote makes it literal text there.
    if text.startswith(_FORMULA_START) or (text.startswith("-") and not _is_number_text(text)):
        return "'" + text
    return text


def _is_number_text(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def to_csv(table: Table) -> str:
    """RFC 4180: CRLF line ends, quotes only where needed, so numbers stay numbers in Excel."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    w.writerow([printable(c.header) for c in table.columns])
    keys = [c.key for c in table.columns]
    w.writerows([_csv_value(r.get(k)) for k in keys] for r in table.rows)
    return buf.getvalue()


def _json_value(value: Any) -> Any:
    # A diverged run logs a NaN loss; JSON has no NaN, so it becomes null.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def to_json(table: Table) -> str:
    keys = [c.key for c in table.columns]
    row_docs = [{k: _json_value(r.get(k)) for k in keys} for r in table.rows]
    doc = {
        "schema_version": JSON_SCHEMA_VERSION,
        "kind": table.kind,
        "title": table.title,
        "columns": [{"key": c.key, "label": c.label, "unit": c.unit, "kind": c.kind} for c in table.columns],
        "rows": row_docs,
        "notes": table.notes,
    }
    # One row per line: readable and diffable, and the C encoder (indent= falls back to Python's).
    head = json.dumps({k: v for k, v in doc.items() if k != "rows"}, indent=2, ensure_ascii=False)
    rows = ",\n".join("    " + json.dumps(r, ensure_ascii=False, allow_nan=False) for r in row_docs)
    text = head[:-2] + ',\n  "rows": [\n' + rows + ("\n" if rows else "") + "  ]\n}\n"
    return json_safe(text)
