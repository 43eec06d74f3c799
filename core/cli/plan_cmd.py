"""`zerodeck plan`: what a recipe needs per card, whether it fits, and what to change if not."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zerodeck.core.cli.output import add_json_flag, emit, print_json, say
from zerodeck.core.errors import EXIT_OK, BadInput
from zerodeck.core.i18n import _

if TYPE_CHECKING:
    from zerodeck.core.plan.calibration import CalibrationTable
    from zerodeck.core.plan.verdict import Plan

TERMS = ["weights", "gradients", "optimizer", "activations", "logits", "buffers", "runtime", "headroom", "total"]


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {v}")
    return v


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return v


def _stage(text: str) -> int:
    if text not in ("0", "1", "2", "3"):
        raise argparse.ArgumentTypeError(f"ZeRO stage must be 0, 1, 2 or 3, got {text!r}")
    return int(text)


def register(sub: Any) -> None:
    p = sub.add_parser("plan", help=_("predict per-card memory and say fits / tight / oom"),
                       description=_("Plan a recipe (file, catalog name or grid) or a model by flags."))
    p.add_argument("recipe", nargs="?", metavar="RECIPE", help=_("recipe .toml, grid .toml or catalog name"))
    p.add_argument("--model", help=_("registry name (e.g. Qwen2.5-14B) or a local directory with config.json"))
    p.add_argument("--method", choices=["lora", "full", "freeze"], default="lora")
    p.add_argument("--lora-rank", type=_positive_int, default=8)
    p.add_argument("--stage", type=_stage, default=0, help=_("ZeRO stage 0-3"))
    p.add_argument("--offload", choices=["none", "optimizer", "all"], default="none")
    p.add_argument("--cards", type=_positive_int, default=8)
    p.add_argument("--card-gb", type=_positive_float, default=64.0)
    p.add_argument("--device", choices=["npu", "cuda", "cpu"], default="npu")
    p.add_argument("--micro-batch", type=_positive_int, default=1)
    p.add_argument("--seq-len", type=_positive_int, default=2048)
    p.add_argument("--grad-ckpt", dest="grad_ckpt", action="store_true", default=True)
    p.add_argument("--no-grad-ckpt", dest="grad_ckpt", action="store_false")
    p.add_argument("--attn", choices=["sdpa", "flash", "eager"], default="sdpa")
    p.add_argument("--precision", choices=["bf16", "fp16", "fp32"], default="bf16")
    p.add_argument("--matrix", action="store_true", help=_("models x ZeRO stages for this machine"))
    add_json_flag(p)
    p.set_defaults(handler=cmd_plan)


def cmd_plan(args: argparse.Namespace) -> int:
    if args.matrix:
        return _matrix(args)
    if args.recipe and args.model:
        raise BadInput(_("give a RECIPE or --model, not both"))
    if args.recipe:
        _show(_plan_recipes(args.recipe), args.json)
        return EXIT_OK
    if not args.model:
        raise BadInput(_("give a RECIPE (file or catalog name), --model NAME, or --matrix"))
    from zerodeck.core.plan.memory import PlanInput
    from zerodeck.core.plan.verdict import plan, resolve_model

    inp = PlanInput(arch=resolve_model(args.model), method=args.method, lora_rank=args.lora_rank,
                    stage=args.stage, offload=args.offload, cards=args.cards, card_gb=args.card_gb,
                    device=args.device, micro_batch=args.micro_batch, seq_len=args.seq_len,
                    grad_ckpt=args.grad_ckpt, attn=args.attn, precision=args.precision)
    backend = "builtin" if args.device == "cpu" else "llamafactory"
    calibration = _calibration().get((args.device, backend))
    _show([plan(inp, calibration=calibration)], args.json)
    return EXIT_OK


def _calibration() -> CalibrationTable:
    """This machine's calibration, read from an existing store only: planning never creates one."""
    from zerodeck.core.cli.context import existing_store
    from zerodeck.core.plan.calibration import calibration_table

    return calibration_table(existing_store())


def _plan_recipes(ref: str) -> list[Any]:
    from zerodeck.core.plan.verdict import plan_recipe
    from zerodeck.core.recipe.catalog import find_recipe
    from zerodeck.core.recipe.grid import expand
    from zerodeck.core.recipe.load import check_recipe_files, load_recipe_file

    path = Path(ref).expanduser()
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise BadInput(_("{path}: no such recipe file").format(path=path))
        recipe = load_recipe_file(path)
        check_recipe_files(recipe, path)
        members = expand(recipe)
    else:
        member, found = find_recipe(ref)
        check_recipe_files(member, Path(found))
        members = [member]
    calibration = _calibration()
    return [plan_recipe(m, calibration=calibration) for m in members]


def _show(plan_objs: list[Plan], as_json: bool) -> None:
    from zerodeck.core.values import gib, pad_cells

    def label(name: str) -> str:
        return "  " + pad_cells(name, 12)

    plans = [p.to_dict() for p in plan_objs]
    if as_json:
        print_json(plans[0] if len(plans) == 1 else plans)
        return
    for i, (p, d) in enumerate(zip(plan_objs, plans)):
        if i:
            print()
        head = d["recipe"] or d["model"]
        say(f"{head}: {d['model']} {d['method']}, ZeRO-{d['zero_stage']}"
              f"{'' if d['offload'] == 'none' else ' offload ' + d['offload']}, {d['cards']} x "
              f"{d['capacity_gib']:g} GiB {d['device']}, micro_batch {d['micro_batch']}, seq_len {d['seq_len']}")
        for k in TERMS:  # unrounded: a tiny model's terms are MiB, not `0.00 GiB`
            print(f"  {k:<12}{gib(getattr(p.breakdown, k)):>13}")
        print(label(_("verdict")) + d["verdict"].upper() + "  "
              + _("(must fit {need:.1f} of {capacity:g} GiB)").format(need=d["must_fit_gib"],
                                                                       capacity=d["capacity_gib"]))
        if d["calibrated_total_gib"] is not None:
            print(label(_("calibrated"))
                  + _("{gib:.2f} GiB (x{factor} from {runs} run(s) on this machine)")
                  .format(gib=d["calibrated_total_gib"], factor=d["calibration_factor"], runs=d["calibration_runs"]))
        print(label(_("host RAM")) + _("{gib:.0f} GiB per node").format(gib=d["host_gib"]))
        if d["suggestion"]:
            say(label(_("to fit")) + str(d["suggestion"]))
        if d["max_micro_batch"]:
            print("  " + _("largest micro_batch that fits: {mb}").format(mb=p.max_micro_batch_text()))
        if d["data_advice"]:
            say(label(_("data")) + str(d["data_advice"]))


def _matrix(args: argparse.Namespace) -> int:
    from zerodeck.core.plan.verdict import matrix

    rows = matrix(cards=args.cards, card_gb=args.card_gb, device=args.device, method=args.method,
                  seq_len=args.seq_len, micro_batch=args.micro_batch)
    if args.json:
        print_json({"cards": args.cards, "card_gb": args.card_gb, "device": args.device,
                    "method": args.method, "seq_len": args.seq_len, "micro_batch": args.micro_batch,
                    "rows": rows})
        return EXIT_OK
    table = [{"model": r["model"], "params_b": r["params_b"],
              **{f"zero{s}": f"{r[f'z{s}_gib']:.1f} {r[f'z{s}']}" for s in range(4)}} for r in rows]
    print(f"{args.method} on {args.cards} x {args.card_gb:g} GiB {args.device}, seq_len {args.seq_len}, "
          f"micro_batch {args.micro_batch}: per-card GiB and verdict")
    emit(table, as_json=False)
    return EXIT_OK
