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
    p.add_argument("--frontier", choices=["micro_batch", "seq_len"],
                   help=_("the largest micro_batch or seq_len that fits (from the planner, or --probe)"))
    p.add_argument("--probe", action="store_true",
                   help=_("with --frontier: confirm by at most three probe runs (each recorded, tag `probe`)"))
    p.add_argument("--probe-steps", type=_positive_int, default=3,
                   help=_("steps per frontier probe (default 3)"))
    add_json_flag(p)
    p.set_defaults(handler=cmd_plan)


def cmd_plan(args: argparse.Namespace) -> int:
    if args.matrix:
        return _matrix(args)
    if args.probe and not args.frontier:
        raise BadInput("--probe goes with --frontier micro_batch|seq_len (a single probe is `zerodeck probe`)")
    if args.frontier:
        return _frontier(args)
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


def _probes() -> dict[tuple[Any, ...], Any]:
    """This machine's probe runs, read from an existing store only."""
    from zerodeck.core.cli.context import existing_store
    from zerodeck.core.plan.calibration import probe_measurements

    return probe_measurements(existing_store())


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
    calibration, probes = _calibration(), _probes()
    return [plan_recipe(m, calibration=calibration, probes=probes) for m in members]


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
        lo, hi = d["range_gib"]
        basis = {"model": _("the model's spread on published measurements"),
                 "calibrated": _("this machine's {runs} run(s)").format(runs=d["calibration_runs"]),
                 "probed": _("probe run {id}").format(id=d["probe_run_id"])}[d["basis"]]
        print(label(_("range")) + f"{gib(lo)} .. {gib(hi)} ({basis})")
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
          f"micro_batch {args.micro_batch}: per-card GiB that must fit, and verdict")
    emit(table, as_json=False)
    return EXIT_OK


def _frontier(args: argparse.Namespace) -> int:
    """`plan --frontier AXIS [--probe]`: the largest value that fits, planned or probed."""
    from zerodeck.core.plan.memory import PlanInput
    from zerodeck.core.plan.verdict import input_from_recipe, resolve_model, validate_input
    from zerodeck.core.probe.frontier import planned_frontier

    axis = args.frontier
    recipe = path = None
    if args.recipe:
        from zerodeck.core.cli.run_cmd import resolve_recipe

        recipe, path = resolve_recipe(args.recipe)
        if recipe.is_grid:
            raise BadInput(f"{args.recipe}: a grid; give one member (zerodeck recipes expand)")
        inp = input_from_recipe(recipe)
        backend = recipe.launch.backend
    elif args.model:
        if args.probe:
            raise BadInput("--probe needs a RECIPE to run")
        inp = PlanInput(arch=resolve_model(args.model), method=args.method, lora_rank=args.lora_rank,
                        stage=args.stage, offload=args.offload, cards=args.cards, card_gb=args.card_gb,
                        device=args.device, micro_batch=args.micro_batch, seq_len=args.seq_len,
                        grad_ckpt=args.grad_ckpt, attn=args.attn, precision=args.precision)
        backend = "builtin" if args.device == "cpu" else "llamafactory"
    else:
        raise BadInput("--frontier needs a RECIPE (or --model NAME)")
    validate_input(inp)
    calib = _calibration().get((inp.device, backend)) or {}
    planned = planned_frontier(inp, axis, float(calib.get("factor") or 1.0))
    if args.probe:
        assert recipe is not None
        result = _probed_frontier(recipe, path, axis, planned, args.probe_steps)
    else:
        from zerodeck.core.probe.frontier import Frontier

        result = Frontier(axis=axis, planned=planned, value=planned, basis="calibrated" if calib else "model")
    d = {"recipe": recipe.name if recipe else None, "model": inp.arch.name, "capacity_gib": inp.card_gb,
         **result.to_dict()}
    if args.json:
        print_json(d)
        return EXIT_OK
    head = d["recipe"] or d["model"]
    value = "nothing fits" if d["value"] is None else str(d["value"])
    say(f"{head}: largest {axis} that fits {inp.card_gb:g} GiB per card: {value} ({d['basis']})")
    if args.probe:
        print(f"  planner     {planned if planned is not None else 'nothing fits'}")
        for p in result.probes:
            peak = "-" if p.peak_gib is None else f"{p.peak_gib:.2f} GiB"
            print(f"  probe run {p.run_id}: {axis} {p.value}: {p.outcome} (peak {peak})")
        if result.first_oom is not None:
            print(f"  first OOM   {axis} {result.first_oom}")
    return EXIT_OK


def _probed_frontier(recipe: Any, path: Any, axis: str, planned: int | None, steps: int) -> Any:
    from zerodeck.core.cli.context import cli_host, cli_store
    from zerodeck.core.errors import OperationFailed
    from zerodeck.core.probe.frontier import FrontierProbe, probed_frontier
    from zerodeck.core.probe.run import probe

    host = cli_host()
    store = cli_store()

    def run_probe(value: int) -> FrontierProbe:
        res = probe(store, recipe, path, steps=steps, host=host, **{axis: value})
        if res.outcome not in ("succeeded", "oom"):
            raise OperationFailed(f"probe run {res.run_id} ({axis} {value}) ended {res.outcome}: "
                                  f"neither a fit nor an OOM (zerodeck show {res.run_id})")
        peak = max(res.per_card_peak_gib) if res.per_card_peak_gib else None
        return FrontierProbe(value, res.run_id, res.outcome, res.outcome == "succeeded", peak)

    return probed_frontier(axis, planned, run_probe)  # type: ignore[arg-type]
