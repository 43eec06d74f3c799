"""`zerodeck chart memory RUN` and `zerodeck chart peaks [RUN...]`: SVG figures for reports."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from zerodeck.core.cli.compare_cmd import load_selected, selection_args
from zerodeck.core.cli.output import err
from zerodeck.core.errors import EXIT_FAILED, EXIT_OK, BadInput


def register(sub: Any) -> None:
    p = sub.add_parser("chart", help="SVG charts: a run's memory per card over time; peaks vs capacity")
    p.set_defaults(group_parser=p)
    cs = p.add_subparsers(dest="chart_command", metavar="CHART", parser_class=type(p))

    mem = cs.add_parser("memory", help="per-card memory over time of one run, with the card capacity")
    mem.add_argument("run", metavar="RUN", help="run id")
    mem.add_argument("-o", "--output", type=Path, metavar="FILE.svg", help="write here (default: stdout)")
    mem.set_defaults(handler=cmd_memory)

    pk = cs.add_parser("peaks", help="peak memory per card of compared runs against card capacity")
    selection_args(pk)
    pk.add_argument("-o", "--output", type=Path, metavar="FILE.svg", help="write here (default: stdout)")
    pk.set_defaults(handler=cmd_peaks)


def _out(args: argparse.Namespace, svg: str, what: str) -> None:
    if args.output:
        if args.output.suffix.lower() != ".svg":
            raise BadInput(f"{args.output}: charts are written as SVG; name the file *.svg")
        from zerodeck.core.export.files import write_export

        write_export(args.output, svg, "svg")
        err(f"wrote {args.output} ({what})")
    else:
        sys.stdout.write(svg)


def cmd_memory(args: argparse.Namespace) -> int:
    from zerodeck.core.cli.context import cli_store
    from zerodeck.core.compare.rows import resolve_refs
    from zerodeck.core.export.svg import memory_chart, memory_series

    if args.output and args.output.suffix.lower() != ".svg":
        raise BadInput(f"{args.output}: charts are written as SVG; name the file *.svg")
    store = cli_store()
    (rid,) = resolve_refs(store, [args.run])
    run = store.run(rid)
    samples = store.memory_series(rid)
    if not samples:
        err(f"run {rid} has no telemetry samples to chart")
        return EXIT_FAILED
    series, cap = memory_series(samples, device=run.device if run else None, card_gb=run.card_gb if run else None)
    name = run.name if run is not None else ""
    _out(args, memory_chart(series, title=f"Run {rid} {name}: memory per card", capacity_gib=cap),
         f"memory over time, {len(series)} series")
    return EXIT_OK


def cmd_peaks(args: argparse.Namespace) -> int:
    from zerodeck.core.export.svg import peaks_chart

    if args.output and args.output.suffix.lower() != ".svg":
        raise BadInput(f"{args.output}: charts are written as SVG; name the file *.svg")
    rows = load_selected(args)
    if rows is None:
        return EXIT_FAILED
    _out(args, peaks_chart(rows), f"peaks of {len(rows)} runs")
    return EXIT_OK
