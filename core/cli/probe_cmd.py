"""`zerodeck probe RECIPE [--steps N] [--json]`: a few steps of the real run, each card's peak measured.

A thin wrapper over `core/probe/run.py`. Exit 0 when the probe ran to its steps (an OOM probe
included: it answered the question), 1 when it failed for another reason.
"""

from __future__ import annotations

import argparse
from typing import Any

from zerodeck.core.cli.output import add_json_flag, print_json, say
from zerodeck.core.errors import EXIT_FAILED, EXIT_OK
from zerodeck.core.i18n import _


def _steps(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= v <= 1000:
        raise argparse.ArgumentTypeError(f"must be 1 to 1000, got {v}")
    return v


def register(sub: Any) -> None:
    p = sub.add_parser("probe", help=_("run a recipe for a few steps and measure each card's peak"),
                       description="Run the recipe as `zerodeck run` would, for a few steps, record it as a "
                                   "run tagged `probe` with each card's measured peak, and stop it.")
    p.add_argument("recipe", metavar="RECIPE", help=_("recipe .toml or catalog name (one recipe, not a grid)"))
    p.add_argument("--steps", type=_steps, default=5, help=_("optimizer steps to run (default 5)"))
    add_json_flag(p)
    p.set_defaults(handler=cmd_probe)


def cmd_probe(args: argparse.Namespace) -> int:
    from zerodeck.core.cli.context import cli_host, cli_store
    from zerodeck.core.cli.run_cmd import resolve_recipe
    from zerodeck.core.probe.run import probe

    recipe, path = resolve_recipe(args.recipe)
    res = probe(cli_store(), recipe, path, steps=args.steps, host=cli_host())
    if args.json:
        print_json(res.to_dict())
    else:
        show(res)
    return EXIT_OK if res.outcome in ("succeeded", "oom") else EXIT_FAILED


def show(res: Any) -> None:
    from zerodeck.core.values import gib

    say(f"probe run {res.run_id}: {res.outcome or 'unknown'} after {res.steps} step(s), {res.wall_s:g} s")
    for card, peak in zip(res.cards, res.per_card_peak_gib):
        say(f"  card {card:<10} peak {gib(peak):>12}")
    step = f"{res.step_s:.3f} s" if res.step_s is not None else "not measured"
    say(f"  step time   {step}")
    say(f"  predicted   {gib(res.predicted_gib)} (the planner's figure)")
    cap = f" against {res.capacity_gib:g} GiB per card" if res.capacity_gib else ""
    say(f"  verdict     {(res.verdict or 'no peak measured').upper()}{cap}")
