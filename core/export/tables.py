"""A comparison Table for reports: terminal text, Markdown, CSV, JSON, HTML or LaTeX.

`render(table, fmt)` returns the text; `format_for_path(path)` infers the format from a file name.
"""

from __future__ import annotations

from pathlib import Path

from zerodeck.core.compare.table import Table
from zerodeck.core.errors import BadInput
from zerodeck.core.export.markup import to_html, to_latex
from zerodeck.core.export.text import JSON_SCHEMA_VERSION, to_csv, to_json, to_markdown, to_text
from zerodeck.core.i18n import _

FORMATS = ("table", "md", "csv", "json", "html", "latex")
_SUFFIXES = {".md": "md", ".markdown": "md", ".csv": "csv", ".json": "json", ".html": "html", ".htm": "html",
             ".tex": "latex", ".txt": "table"}
_RENDER = {"table": to_text, "md": to_markdown, "csv": to_csv, "json": to_json, "html": to_html, "latex": to_latex}


def format_for_path(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIXES:
        raise BadInput(_("{path}: cannot tell the format from the suffix {suffix}; give --format ({formats}) "
                         "or use one of {suffixes}").format(path=path, suffix=suffix or _("(none)"),
                                                           formats="|".join(FORMATS),
                                                           suffixes=" ".join(sorted(_SUFFIXES))))
    return _SUFFIXES[suffix]


def render(table: Table, fmt: str) -> str:
    if fmt not in _RENDER:
        raise BadInput(_("--format: unknown format {fmt!r} (one of: {formats})").format(fmt=fmt,
                                                                                        formats=", ".join(FORMATS)))
    return _RENDER[fmt](table)


__all__ = ["FORMATS", "JSON_SCHEMA_VERSION", "format_for_path", "render", "to_csv", "to_html", "to_json",
           "to_latex", "to_markdown", "to_text"]
