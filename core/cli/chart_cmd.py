"""`zerodeck chart loss|throughput|memory|peaks RUN... -o FILE.png|.svg|.pdf`: figures for reports.

The file's suffix picks the format; with no `-o` the chart goes to stdout as SVG. Each command starts
its `Painter` (`core/export/painter.py`, in that format) once the arguments are checked, so
matplotlib is imported in another process while the runs are read; a run that cannot be drawn ends
the command, and the painter with it, before anything is drawn. Their work is done when they
return (the file written, the line printed), so their process leaves without tearing its
interpreter down (`context.exit_quickly`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from zerodeck.core.cli.compare_cmd import load_selected, selection_args
from zerodeck.core.cli.context import exit_quickly
from zerodeck.core.cli.output import err
from zerodeck.core.errors import EXIT_FAILED, EXIT_OK, BadInput
from zerodeck.core.export.painter import Painter
from zerodeck.core.i18n import _

MAX_MEMORY_PANELS = 8


def _output_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", type=Path, metavar="FILE",
                   help=_("write FILE.png, FILE.svg or FILE.pdf (default: SVG on stdout)"))


def register(sub: Any) -> None:
    p = sub.add_parser("chart", help=_("charts for reports (PNG, SVG, PDF): loss, throughput, memory, peaks"))
    p.set_defaults(group_parser=p)
    cs = p.add_subparsers(dest="chart_command", metavar="CHART", parser_class=type(p))

    loss = cs.add_parser("loss", help=_("train and eval loss by step; several runs overlaid"))
    selection_args(loss)
    _output_arg(loss)
    loss.set_defaults(handler=cmd_loss)

    tput = cs.add_parser("throughput", help=_("throughput by step (tokens/s, else samples/s); several runs overlaid"))
    selection_args(tput)
    _output_arg(tput)
    tput.set_defaults(handler=cmd_throughput)

    mem = cs.add_parser("memory", help=_("per-card memory over time with the card capacity, one panel per run"))
    mem.add_argument("runs", nargs="+", metavar="RUN", help=_("run ids, or recipe names (their latest run)"))
    _output_arg(mem)
    mem.set_defaults(handler=cmd_memory)

    pk = cs.add_parser("peaks", help=_("peak memory per card of compared runs against card capacity; "
                                       "one run: a bar per card"))
    selection_args(pk)
    _output_arg(pk)
    pk.set_defaults(handler=cmd_peaks)


def _format(args: argparse.Namespace) -> str:
    from zerodeck.core.export.chart_data import chart_format

    return chart_format(args.output) if args.output else "svg"


def write_chart(output: Path | None, image: bytes, what: str) -> None:
    """Write the chart to its file, or to stdout as SVG text; then say what was written."""
    if output is None:
        sys.stdout.write(image.decode("utf-8"))
        return
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_bytes(image)
    except OSError as exc:
        raise BadInput(_("{path}: cannot write: {reason}").format(path=output, reason=exc.strerror or exc)) from None
    err(_("wrote {path} ({what})").format(path=output, what=what))


# The columns each curve reads, after the step: throughput is tokens/s where recorded, else samples/s.
_COLUMNS = {"loss": ("loss",), "throughput": ("tokens_per_s", "samples_per_s")}


def _curves(args: argparse.Namespace, kind: str) -> int:
    exit_quickly()
    with Painter(_format(args)) as painter:
        return _draw_curves(args, kind, painter)


def _draw_curves(args: argparse.Namespace, kind: str, painter: Painter) -> int:
    from zerodeck.core.cli.context import cli_store
    from zerodeck.core.export.chart_data import Curve, drop_ancestors, stitch
    from zerodeck.core.outcome.evals import eval_points
    from zerodeck.store.api import stitch_chain

    rows = load_selected(args)
    if rows is None:
        return EXIT_FAILED
    store = cli_store()
    # A resumed run is drawn with the runs it resumed as one line (issue 18); a run given together
    # with a later run of its own chain is drawn once, as part of that line.
    alone = {r.id: r for r in store.run_records(ids=[int(row["id"]) for row in rows if row.get("parent_id") is None])}
    chains = [store.run_chain(int(row["id"])) if row.get("parent_id") is not None
              else [r for r in (alone.get(int(row["id"])),) if r is not None] for row in rows]
    keep = drop_ancestors([[r.id for r in chain] for chain in chains])
    # One read for every run drawn, of only the columns drawn: (step, value, [samples/s]) rows.
    series = store.metric_columns({r.id for i in keep for r in chains[i]}, *_COLUMNS[kind])
    curves: list[Curve] = []
    empty: list[str] = []
    tokens = False
    for i in keep:
        row, chain = rows[i], chains[i]
        label = f"#{int(row['id'])} {row.get('name') or ''}".strip()
        parts = [series[r.id] for r in chain]
        points = stitch_chain(parts)
        if kind == "throughput":
            tokens = tokens or any(p[1] is not None for p in points)
            train = [(float(p[0]), v) for p in points if (v := p[1] if p[1] is not None else p[2]) is not None]
        else:
            train = [(float(p[0]), p[1]) for p in points if p[1] is not None]
        # Where each later run of the chain restarted: its first recorded step.
        starts = [float(own[0][0]) if own else None for own in parts[1:]]
        evals: list[tuple[float, float]] = []
        if kind == "loss":
            evals = stitch([(start, [(float(s), v) for s, v in eval_points(r.log_path)])
                            for start, r in zip([None, *starts], chain)])
        if train or evals:
            curves.append(Curve(label=label, train=train, eval=evals, resumed_from=tuple(r.id for r in chain[:-1]),
                                resumes=tuple(s for s in starts if s is not None)))
        else:
            empty.append(label)
    if not curves:
        err(_("no {what} points recorded for {runs}").format(what=_("loss") if kind == "loss" else _("throughput"),
                                                               runs=", ".join(empty)))
        return EXIT_FAILED
    if empty:
        err(_("left out (nothing to draw): {runs}").format(runs=", ".join(empty)))
    if kind == "loss":
        title, ylabel = _("Loss"), _("loss")
    else:
        title = _("Throughput")
        ylabel = _("tokens/s") if tokens else _("samples/s")
    write_chart(args.output, painter.draw("curves_chart", curves, warn=err, title=title, ylabel=ylabel),
                _("{kind}, {n} runs").format(kind=title, n=len(curves)))
    return EXIT_OK


def cmd_loss(args: argparse.Namespace) -> int:
    return _curves(args, "loss")


def cmd_throughput(args: argparse.Namespace) -> int:
    return _curves(args, "throughput")


def cmd_memory(args: argparse.Namespace) -> int:
    fmt = _format(args)
    if len(args.runs) > MAX_MEMORY_PANELS:
        raise BadInput(_("chart memory: at most {n} runs in one chart (got {got})")
                       .format(n=MAX_MEMORY_PANELS, got=len(args.runs)))
    exit_quickly()
    with Painter(fmt) as painter:
        return _draw_memory(args, painter)


def _draw_memory(args: argparse.Namespace, painter: Painter) -> int:
    from zerodeck.core.cli.context import cli_store
    from zerodeck.core.compare.rows import resolve_refs
    from zerodeck.core.export.chart_data import MemoryPanel, memory_series

    store = cli_store()
    panels: list[MemoryPanel] = []
    for rid in resolve_refs(store, list(args.runs)):
        run = store.run(rid)
        samples = store.memory_series(rid)
        if not samples:
            err(_("run {rid} has no telemetry samples to chart").format(rid=rid))
            return EXIT_FAILED
        series, cap = memory_series(samples, device=run.device if run else None, card_gb=run.card_gb if run else None)
        label = f"#{rid} {run.name if run else ''}".strip()
        panels.append(MemoryPanel(label=label, series=series, capacity_gib=cap))
    if len(panels) == 1:
        title = _("Run {run}: memory per card").format(run=panels[0].label)
    else:
        title = _("Memory per card")
    n_series = sum(len(p.series) for p in panels)
    write_chart(args.output, painter.draw("memory_chart", panels, warn=err, title=title),
                _("memory over time, {n} series").format(n=n_series))
    return EXIT_OK


def cmd_peaks(args: argparse.Namespace) -> int:
    exit_quickly()
    with Painter(_format(args)) as painter:
        return _draw_peaks(args, painter)


def _draw_peaks(args: argparse.Namespace, painter: Painter) -> int:
    rows = load_selected(args)
    if rows is None:
        return EXIT_FAILED
    title = None
    if len(rows) == 1:
        from zerodeck.core.cli.context import cli_store
        from zerodeck.core.export.chart_data import card_peak_rows

        store = cli_store()
        run = store.run(int(rows[0]["id"]))
        cards = card_peak_rows(rows[0], store.card_peaks(int(rows[0]["id"])), device=run.device if run else None,
                               card_gb=run.card_gb if run else None)
        if cards:
            label = f"#{rows[0]['id']} {rows[0].get('name') or ''}".strip()
            rows, title = cards, _("Run {run}: peak per card vs capacity").format(run=label)
    write_chart(args.output, painter.draw("peaks_chart", rows, warn=err, title=title),
                _("peaks of {n} runs").format(n=len(rows)) if title is None
                else _("peaks of {n} cards").format(n=len(rows)))
    return EXIT_OK
