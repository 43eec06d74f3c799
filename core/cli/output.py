"""One output layer for every command: `--json` to stdout, tables for people, errors to stderr.

Commands build plain data (lists of dicts, dicts) and hand it here, so the JSON and the table never
drift apart and no command formats its own output. Nothing user-written reaches the terminal raw:
cells pass through `human` and lines through `say` / `err`, which show control characters as visible
escapes (`core/values.py: printable`); JSON escapes C0 controls itself, C1 and bidi ones `json_safe`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from zerodeck.core.i18n import N_, _
from zerodeck.core.values import human, json_safe, printable


def _default(obj: Any) -> Any:
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    if hasattr(obj, "__fspath__"):
        return os.fspath(obj)
    if hasattr(obj, "model_dump"):
        return obj.model_dump()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps(data: Any) -> str:
    if isinstance(data, list) and data and all(isinstance(item, dict) for item in data):
        # A list of records, one per line with the C encoder: `indent=` falls back to the pure-Python
        # encoder, which took over a second for `runs --json` at 10,000 runs.
        rows = ",\n".join("  " + json.dumps(item, ensure_ascii=False, default=_default) for item in data)
        return json_safe("[\n" + rows + "\n]")
    return json_safe(json.dumps(data, indent=2, ensure_ascii=False, default=_default))


def print_json(data: Any) -> None:
    sys.stdout.write(dumps(data) + "\n")


def err(message: str) -> None:
    """One line on stderr, prefixed so it is clear which tool spoke; a newline or an escape sequence
    inside (a tool's error text, a user's value) is shown, not obeyed."""
    sys.stderr.write(f"zerodeck: {printable(message)}\n")


def say(text: Any) -> None:
    """A line (or block of lines) for people on stdout, control characters shown as escapes."""
    print(printable(str(text), keep="\n\t"))


JSON_HELP = N_("machine output on stdout")


def add_json_flag(parser: argparse.ArgumentParser, help: str = JSON_HELP) -> None:
    """The one `--json` option of every data command: same name, same destination (`args.json`)."""
    parser.add_argument("--json", action="store_true", help=_(help))


def render_table(rows: Sequence[dict[str, Any]], columns: Iterable[str] | None = None) -> str:
    """A plain aligned text table; plain so it survives any terminal, pipe or SSH link."""
    cols = list(columns) if columns is not None else (list(rows[0]) if rows else [])
    if not cols:
        return ""
    cells = [[human(r.get(c)) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
    numeric = [all(_is_number(r.get(c)) for r in rows) and bool(rows) for c in cols]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return "  ".join(parts).rstrip()

    out = [line([printable(c.upper()) for c in cols])]
    out += [line(r) for r in cells]
    return "\n".join(out)


def _is_number(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def emit(data: Any, *, as_json: bool, columns: Iterable[str] | None = None) -> None:
    """Print `data` as JSON or as a table (a list of dicts) / key-value block (a dict)."""
    if as_json:
        print_json(data)
        return
    if isinstance(data, list):
        text = render_table(data, columns)
        if text:
            print(text)
    elif isinstance(data, dict):
        keys = list(columns) if columns is not None else list(data)
        width = max((len(k) for k in keys), default=0)
        for k in keys:
            print(f"{printable(k).ljust(width)}  {human(data.get(k))}")
    else:
        say(data)
