"""`zerodeck compare` and `zerodeck chart`: the write-up of a round of experiments, from the command line.

Thin wrappers over `zerodeck.core.compare` (rows, tables, pivots) and `zerodeck.core.export`
(formats, SVG charts), the same functions the TUI's Compare screen calls.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zerodeck.core.cli.output import add_json_flag, err
from zerodeck.core.errors import EXIT_FAILED, EXIT_OK, BadInput
from zerodeck.core.i18n import _, ngettext

if TYPE_CHECKING:
    from zerodeck.core.export.painter import Painter

FORMAT_CHOICES = ("table", "md", "csv", "json", "html", "latex")


def selection_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="*", metavar="RUN",
                   help=_("run ids, or recipe names (their latest run); none: the latest run of each recipe"))
    p.add_argument("--all", action="store_true", help=_("every recorded run"))
    p.add_argument("--tag", metavar="T", help=_("runs carrying this tag"))
    p.add_argument("--grid", metavar="G", help=_("runs expanded from this grid"))


def register(sub: Any) -> None:
    p = sub.add_parser("compare", help=_("compare runs side by side; export as table, md, csv, json, html, latex"),
                       description=_("Compare recorded runs: recipe axes, outcome, per-card peak memory against "
                       "capacity, throughput, loss, and the command to reproduce. --diff-only keeps the columns "
                       "that differ; --pivot ROW,COL --value FIELD builds a matrix such as model x ZeRO stage."))
    selection_args(p)
    p.add_argument("--diff-only", action="store_true", help=_("keep only the columns whose values differ"))
    p.add_argument("--pivot", metavar="ROW,COL", help=_("matrix view, e.g. model,zero_stage"))
    p.add_argument("--value", metavar="FIELD", help=_("the pivot's cell field (default peak_max_gib), e.g. outcome"))
    p.add_argument("--columns", metavar="A,B,...", help=_("only these columns, in this order"))
    p.add_argument("--format", choices=FORMAT_CHOICES, help=_("output format (default: table, or from -o's suffix)"))
    p.add_argument("-o", "--output", type=Path, metavar="FILE", help=_("write to FILE instead of stdout"))
    p.add_argument("--chart", type=Path, metavar="FILE",
                   help=_("also write the peak-per-card vs capacity bar chart of these runs (.png, .svg or .pdf)"))
    add_json_flag(p, help=_("same as --format json"))
    p.set_defaults(handler=cmd_compare)


def selection_from(args: argparse.Namespace) -> Any:
    from zerodeck.core.compare import Selection

    return Selection(refs=tuple(args.runs), all=args.all, tag=args.tag, grid=args.grid)


def load_selected(args: argparse.Namespace) -> list[dict[str, Any]] | None:
    """The rows, or None after saying on stderr why there are none."""
    from zerodeck.core.cli.context import cli_store
    from zerodeck.core.compare import load_rows

    sel = selection_from(args)
    rows = load_rows(cli_store(), sel)
    if not rows:
        what = []
        if sel.tag is not None:
            what.append(_("tag {tag!r}").format(tag=sel.tag))
        if sel.grid is not None:
            what.append(_("grid {grid!r}").format(grid=sel.grid))
        err(_("no runs with {what}").format(what=_(" and ").join(what)) if what
            else _("no runs recorded yet (start one with `zerodeck run`)"))
        return None
    return rows


def _format(args: argparse.Namespace) -> str:
    from zerodeck.core.export.tables import format_for_path

    if args.json and args.format not in (None, "json"):
        raise BadInput(_("--json and --format {format} disagree; give one").format(format=args.format))
    if args.json:
        return "json"
    if args.format:
        return str(args.format)
    return format_for_path(args.output) if args.output else "table"


def cmd_compare(args: argparse.Namespace) -> int:
    from zerodeck.core.cli.context import exit_quickly
    from zerodeck.core.export.chart_data import chart_format

    exit_quickly()  # its tables and charts are written and closed when it returns
    chart_fmt = chart_format(args.chart) if args.chart else None
    if chart_fmt is None:
        return _compare(args, None)
    from zerodeck.core.export.painter import Painter

    # Started before the table's options are checked (their check imports the comparison code): a
    # bad one stops the painter unused, a good one has it importing matplotlib meanwhile.
    with Painter(chart_fmt) as painter:
        return _compare(args, painter)


def _pivot(args: argparse.Namespace) -> list[str] | None:
    if args.value and not args.pivot:
        raise BadInput(_("--value needs --pivot ROW,COL"))
    if not args.pivot:
        return None
    parts = [p.strip() for p in args.pivot.split(",")]
    if len(parts) != 2 or not all(parts):
        raise BadInput(_("--pivot: expected ROW,COL such as model,zero_stage (got {value!r})")
                       .format(value=args.pivot))
    return parts


def _compare(args: argparse.Namespace, painter: Painter | None) -> int:
    from zerodeck.core.compare import comparison_table, pivot_table
    from zerodeck.core.export.files import write_export
    from zerodeck.core.export.tables import render

    fmt = _format(args)
    pivot = _pivot(args)
    rows = load_selected(args)
    if rows is None:
        return EXIT_FAILED
    if pivot:
        table = pivot_table(rows, pivot[0], pivot[1], args.value or "peak_max_gib")
    else:
        cols = [c.strip() for c in args.columns.split(",") if c.strip()] if args.columns else None
        table = comparison_table(rows, diff_only=args.diff_only, columns=cols)
    text = render(table, fmt)
    if args.output:
        write_export(args.output, text, fmt)
        n = len(table.rows)
        err(_("wrote {path} ({what})").format(path=args.output, what=f"{fmt}, "
                                               + ngettext("{n} row", "{n} rows", n).format(n=n)))
    else:
        sys.stdout.write(text)
    if painter is not None:
        from zerodeck.core.cli.chart_cmd import write_chart

        write_chart(args.chart, painter.draw("peaks_chart", rows, warn=err),
                    _("peak per card vs capacity, {n} runs").format(n=len(rows)))
    return EXIT_OK
