"""`zerodeck data inspect`: sample count, duplicates, lengths and the size verdict of a training file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from zerodeck.core.cli.output import add_json_flag, emit, err
from zerodeck.core.errors import EXIT_OK, EXIT_USAGE
from zerodeck.core.i18n import _

SHOWN = ["path", "format", "shape", "samples", "duplicates", "duplicate_ratio", "length", "tokens",
         "model", "recommended_samples", "verdict", "advice", "est_epoch_s"]


def register(sub: Any) -> None:
    p = sub.add_parser("data", help=_("inspect training data files"))
    p.set_defaults(group_parser=p)
    ds = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND", parser_class=type(p))
    ins = ds.add_parser("inspect", help=_("samples, duplicates, length percentiles and size advice"))
    ins.add_argument("path", type=Path, metavar="PATH", help=_("a JSON or JSONL file (alpaca or sharegpt)"))
    ins.add_argument("--model", help=_("registry name or local model directory: recommended size for it"))
    add_json_flag(ins)
    ins.set_defaults(handler=cmd_inspect)


def cmd_inspect(args: argparse.Namespace) -> int:
    from zerodeck.core.cli.context import existing_store
    from zerodeck.core.plan.data import inspect_data

    # Only a model's estimate reads the store, and inspecting data never creates one.
    rep = inspect_data(args.path, model=args.model, store=existing_store() if args.model else None)
    d = rep.to_dict()
    if args.json:
        emit(d, as_json=True)
    else:
        view = dict(d)
        view["length"] = "p50 {p50} / p95 {p95} / max {max} chars".format(**d["length"])
        if d["tokens"]:
            view["tokens"] = "p50 {p50} / p95 {p95} / max {max}".format(**d["tokens"])
        emit(view, as_json=False, columns=[k for k in SHOWN if view.get(k) is not None])
    if rep.bad_message:
        err(rep.bad_message)
        return EXIT_USAGE
    return EXIT_OK
