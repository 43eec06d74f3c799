"""HTML and LaTeX exports, where every value passes through the format's escaping.

Recipe names, reasons and commands are user text: a name such as `<script>` or `a_b & 50%` must
show literally in the report and never become markup, and a control character shows as `\x1b`
(`core/values.py: printable`) before the format's own escaping.
"""

from __future__ import annotations

import html

from zerodeck.core.compare.fields import REPRODUCE
from zerodeck.core.compare.table import Table
from zerodeck.core.export.text import plain, text_cells
from zerodeck.core.values import printable

_CSS = """body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px;vertical-align:top}
th{background:#f2f2f2;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;white-space:pre-wrap}
tr:nth-child(even) td{background:#fafafa}
p.note{color:#666;font-style:italic}"""


def _html_escape(text: str) -> str:
    return html.escape(plain(text), quote=True)


def to_html(table: Table) -> str:
    """One self-contained page (inline style, no scripts, no external files)."""
    cols = table.dropping_empty().columns
    classes = [' class="num"' if c.numeric else (' class="code"' if c.key in REPRODUCE else "") for c in cols]
    title = _html_escape(table.title)
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{title}</title>",
        f"<style>\n{_CSS}\n</style>",
        "</head>",
        "<body>",
        f"<h1>{title}</h1>",
        "<table>",
        "<thead><tr>" + "".join(f"<th>{_html_escape(c.header)}</th>" for c in cols) + "</tr></thead>",
        "<tbody>",
    ]
    opens = [f"<td{cl}>" for cl in classes]
    for cells in text_cells(table, cols, _html_escape):
        out.append("<tr>" + "".join(o + v + "</td>" for o, v in zip(opens, cells)) + "</tr>")
    out += ["</tbody>", "</table>"]
    out += [f'<p class="note">{_html_escape(n)}</p>' for n in table.notes]
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"


_TEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "×": r"$\times$",
    "\n": " ",
    "\r": " ",
}
_TEX_TABLE = str.maketrans(_TEX)


def tex_escape(text: str) -> str:
    return printable(text, keep="\r\n").translate(_TEX_TABLE)  # line breaks: spaces (below)


def to_latex(table: Table) -> str:
    """A booktabs table (needs `\\usepackage{booktabs}`); the long reproduce columns are left out."""
    cols = [c for c in table.dropping_empty().columns if c.key not in REPRODUCE]
    spec = "".join("r" if c.numeric else "l" for c in cols)
    out = [
        "% zerodeck export; needs \\usepackage{booktabs}",
        "\\begin{table}[htbp]",
        "\\centering",
        f"\\caption{{{tex_escape(table.title)}}}",
        f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule",
        " & ".join(tex_escape(c.header) for c in cols) + " \\\\",
        "\\midrule",
    ]
    for cells in text_cells(table, cols, tex_escape):
        out.append(" & ".join(cells) + " \\\\")
    out += ["\\bottomrule", "\\end{tabular}"]
    out += [f"\\par\\smallskip{{\\footnotesize {tex_escape(n)}}}" for n in table.notes]
    out += ["\\end{table}"]
    return "\n".join(out) + "\n"
