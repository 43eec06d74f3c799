"""From a recipe to a Plan: the per-card prediction, a fits / tight / oom verdict, and advice.

This is the planner's public face for the CLI, the TUI and the launcher: `plan_recipe(recipe)` and
`plan(input)` return a plain `Plan`, calibrated when the caller passes this machine's calibration
table. For a recipe that does not fit it names the cheapest change that does; for one that fits,
the largest micro-batch that still fits. Cost order of changes (cheapest first): sdpa instead of
eager attention (free), ZeRO-1/2 (same step time, sharded optimizer and gradients), gradient
checkpointing (~30 % more compute), ZeRO-3 (an all-gather per layer), a smaller micro-batch (same
global batch through gradient accumulation, lower throughput), optimizer offload, parameter offload
(host bandwidth bound), and last a shorter sequence, which changes what the model learns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from zerodeck.core.errors import BadInput
from zerodeck.core.plan import memory, ranges
from zerodeck.core.plan.calibration import CalibrationTable, ProbeMeasurement, probe_key
from zerodeck.core.plan.data import data_verdict, recommended_samples
from zerodeck.core.plan.memory import LORA_MODULES, Breakdown, PlanInput, estimate
from zerodeck.core.plan.registry import REGISTRY, ModelArch, UnknownModel, from_config, lookup

VERDICTS = ("fits", "tight", "oom")
MATRIX_MODELS = [n for n in REGISTRY if n != "zerodeck-tiny"]
# The micro-batch search stops here: the activation terms were fitted on runs with small
# micro-batches, so a figure in the hundreds would be an extrapolation nobody should launch on.
MICRO_BATCH_SEARCH = 64
MicroBatchBound = Literal["memory", "data", "search"]


@dataclass
class Plan:
    """One planned recipe. A launcher records `breakdown.total` (raw, never the calibrated figure)
    as `Run.predicted_peak_gib`, so calibration always compares measurements with the physics."""

    model: str
    method: str
    stage: int
    offload: str
    cards: int
    card_gb: float
    device: str
    micro_batch: int
    seq_len: int
    breakdown: Breakdown
    capacity_gib: float
    verdict: str
    raw_verdict: str
    host_gib: float
    suggestion: str | None = None
    max_micro_batch: int | None = None
    # What stopped the search: the card's memory (exact), the data (a bigger micro-batch has no
    # samples to fill it), or the search limit (at least this much; more was not searched).
    max_micro_batch_bound: MicroBatchBound | None = None
    data_samples: int | None = None
    grad_accum: int = 1
    calibrated_total_gib: float | None = None
    calibration_factor: float | None = None
    calibration_runs: int = 0
    data_advice: str | None = None
    recipe: str | None = None
    notes: list[str] = field(default_factory=list)
    # The honest band around the figure (ranges.py) and what it rests on.
    range_gib: tuple[float, float] = (0.0, 0.0)
    basis: ranges.Basis = "model"
    probe_run_id: int | None = None

    @property
    def total_gib(self) -> float:
        return self.breakdown.total

    def max_micro_batch_text(self) -> str | None:
        """The largest micro-batch as people should read it, saying what bounds it."""
        mb = self.max_micro_batch
        if mb is None:
            return None
        if self.max_micro_batch_bound == "search":
            return f"≥ {mb} (not searched further)"
        if self.max_micro_batch_bound == "data":
            return (f"{mb} (the data's {self.data_samples} samples over {self.cards} card(s) x grad_accum "
                    f"{self.grad_accum}; memory allows more)")
        return str(mb)

    def to_dict(self) -> dict[str, Any]:
        """The `zerodeck plan --json` contract (ARCHITECTURE.md, "Contracts"), plus detail keys."""
        return {
            "recipe": self.recipe,
            "model": self.model,
            "method": self.method,
            "zero_stage": self.stage,
            "offload": self.offload,
            "cards": self.cards,
            "device": self.device,
            "micro_batch": self.micro_batch,
            "seq_len": self.seq_len,
            "per_card_gib": self.breakdown.as_dict(),
            "capacity_gib": round(self.capacity_gib, 2),
            "verdict": self.verdict,
            "raw_verdict": self.raw_verdict,
            "host_gib": round(self.host_gib, 1),
            "must_fit_gib": round(self.breakdown.hard, 2),
            "calibrated_total_gib": _r(self.calibrated_total_gib),
            "calibration_factor": _r(self.calibration_factor, 3),
            "calibration_runs": self.calibration_runs,
            "trainable_params": self.breakdown.trainable_params,
            "total_params": self.breakdown.total_params,
            "suggestion": self.suggestion,
            "max_micro_batch": self.max_micro_batch,
            "max_micro_batch_bound": self.max_micro_batch_bound,
            "data_advice": self.data_advice,
            "range_gib": [round(self.range_gib[0], 2), round(self.range_gib[1], 2)],
            "basis": self.basis,
            "probe_run_id": self.probe_run_id,
        }


def _r(v: float | None, nd: int = 2) -> float | None:
    return None if v is None else round(v, nd)


def resolve_model(name: str | None = None, path: str | None = None) -> ModelArch:
    """A registry name, or a local directory / config.json path; BadInput when neither works."""
    if path or (name and ("/" in name.removeprefix("Qwen/").removeprefix("qwen/") or Path(name).exists())):
        target = Path(path or name or "").expanduser()
        if not target.exists():
            if path:
                raise BadInput(f"{target}: no such model directory")
            msg = str(UnknownModel(target.name))
            hint = msg[msg.index(" (did"):] if " (did" in msg else ""
            raise BadInput(f"{target}: neither a registry model nor a local directory{hint}")
        try:
            return from_config(target)
        except FileNotFoundError:
            raise BadInput(f"{target}: no config.json in this model directory") from None
        except (KeyError, ValueError, TypeError) as exc:
            raise BadInput(f"{target}/config.json: cannot read the architecture ({exc})") from None
    try:
        return lookup(name or "")
    except UnknownModel as exc:
        raise BadInput(str(exc)) from None


def _target(target: str | list[str]) -> tuple[str, ...]:
    if isinstance(target, str):
        if target == "all":
            return LORA_MODULES
        target = [t.strip() for t in target.split(",")]
    return tuple(t for t in target if t in LORA_MODULES) or LORA_MODULES


def input_from_recipe(recipe: Any) -> PlanInput:
    arch = resolve_model(recipe.model.name, recipe.model.path)
    t = recipe.train
    return PlanInput(
        arch=arch, method=recipe.method.kind, lora_rank=recipe.method.rank,
        lora_target=_target(recipe.method.target), freeze_layers=recipe.method.freeze_trainable_layers,
        stage=recipe.zero.stage, offload=recipe.zero.offload, cards=recipe.hardware.cards,
        nodes=recipe.cluster.nodes, card_gb=recipe.hardware.card_gb, device=recipe.hardware.device,
        micro_batch=t.micro_batch,
        seq_len=t.seq_len, grad_ckpt=t.grad_ckpt, attn=t.attn, precision=t.precision,
        **_quant(recipe),
        lora_dropout=recipe.method.dropout,
        # Every batch is seq_len tokens when the trainer packs: the builtin trainer cuts one byte
        # stream into seq_len rows, and LLaMA-Factory packs pre-training text into cutoff_len blocks
        # (`packing` is on for stage pt). Then the allocator keeps no blocks of other lengths.
        fixed_length=recipe.launch.backend == "builtin" or (recipe.launch.backend == "llamafactory"
                                                              and recipe.data.format == "text"),
    )


def _quant(recipe: Any) -> dict[str, Any]:
    """QLoRA base weights for the memory model's existing terms: bitsandbytes at load (`method.quant_bits`),
    or a GPTQ / AWQ checkpoint (published at 4 bits; both lay out linear weights with group scales)."""
    if recipe.method.quant_bits:
        return {"quant_bits": recipe.method.quant_bits, "quant_format": "bnb"}
    if recipe.model.quantization:
        return {"quant_bits": 4, "quant_format": "gptq"}
    return {}


def validate_input(inp: PlanInput) -> None:
    checks = [("cards", inp.cards), ("micro-batch", inp.micro_batch), ("seq-len", inp.seq_len),
              ("lora-rank", inp.lora_rank)]
    for name, value in checks:
        if value <= 0:
            raise BadInput(f"--{name}: must be a positive number, got {value}")
    if not inp.card_gb > 0:
        raise BadInput(f"--card-gb: must be a positive number, got {inp.card_gb}")
    if inp.stage not in (0, 1, 2, 3):
        raise BadInput(f"--stage: ZeRO stage must be 0, 1, 2 or 3, got {inp.stage}")
    if inp.offload == "all" and inp.stage != 3:
        raise BadInput("--offload all (parameters too) needs --stage 3")
    if inp.offload == "optimizer" and inp.stage == 0:
        raise BadInput("--offload optimizer needs --stage 1, 2 or 3")


def verdict_of(gib: float, capacity: float) -> str:
    if gib > capacity:
        return "oom"
    if gib > capacity * (1 - memory.TIGHT_FRACTION):
        return "tight"
    return "fits"


def plan(inp: PlanInput, *, calibration: dict[str, Any] | None = None, advise: bool = True,
         recipe_name: str | None = None, samples: int | None = None, grad_accum: int = 1,
         probe: ProbeMeasurement | None = None) -> Plan:
    validate_input(inp)
    bd = estimate(inp)
    cap = inp.card_gb
    raw = verdict_of(bd.hard, cap)
    p = Plan(model=inp.arch.name, method=inp.method, stage=inp.stage, offload=inp.offload,
             cards=inp.cards, card_gb=inp.card_gb, device=inp.device, micro_batch=inp.micro_batch,
             seq_len=inp.seq_len, breakdown=bd, capacity_gib=cap, verdict=raw, raw_verdict=raw,
             host_gib=bd.host_gib, recipe=recipe_name, data_samples=samples, grad_accum=grad_accum)
    factor = None
    if calibration:
        factor = calibration.get("factor")
        p.calibration_runs = int(calibration.get("runs", 0))
    if factor:
        p.calibration_factor = factor
        p.calibrated_total_gib = bd.total * factor
    _apply_range(p, calibration if factor else None, probe)
    if advise:
        fits = _fits_fn(factor)
        if p.verdict == "oom":
            p.suggestion = suggest(inp, fits)
        else:
            p.max_micro_batch, p.max_micro_batch_bound = largest_micro_batch(inp, fits, samples=samples,
                                                                             grad_accum=grad_accum)
    return p


def _apply_range(p: Plan, calibration: dict[str, Any] | None, probe: ProbeMeasurement | None) -> None:
    """The range, its basis and the verdict read from its high end (ranges.py)."""
    bd, cap = p.breakdown, p.capacity_gib
    if probe is not None and (probe.outcome == "oom" or probe.peak_gib):
        p.basis, p.probe_run_id = "probed", probe.run_id
        if probe.outcome == "oom":
            # The probe ran out of memory: this configuration does not fit, whatever the model says.
            p.range_gib = (cap, max(cap, bd.total * ranges.MODEL_SPREAD[1]))
            p.verdict = "oom"
            return
        peak = float(probe.peak_gib or 0.0)
        band = ranges.probed_band()
        p.range_gib = (peak * band.low, peak * band.high)
        p.verdict = ranges.verdict_with_range(peak, peak * band.high, cap)
        return
    factor = 1.0
    band = ranges.model_band()
    if calibration:
        factor = float(calibration["factor"])
        band = ranges.calibrated_band(calibration.get("spread"), int(calibration.get("runs", 0)))
        p.basis = "calibrated"
    total, hard = bd.total * factor, bd.hard * factor
    p.range_gib = (total * band.low, total * band.high)
    p.verdict = ranges.verdict_with_range(hard, hard * band.high, cap)


def _fits_fn(factor: float | None) -> Callable[[PlanInput], bool]:
    def fits(inp: PlanInput) -> bool:
        return verdict_of(estimate(inp).hard * (factor or 1.0), inp.card_gb) != "oom"

    return fits


def _changes(inp: PlanInput) -> list[tuple[str, PlanInput]]:
    """Single changes in cost order, each as (what to tell the user, the changed input)."""
    out: list[tuple[str, PlanInput]] = []
    if inp.attn == "eager":
        out.append(("use sdpa attention instead of eager", inp.with_(attn="sdpa")))
    for stage in (1, 2):
        if inp.stage < stage:
            out.append((f"use ZeRO-{stage}", inp.with_(stage=stage)))
    if not inp.grad_ckpt:
        out.append(("turn on gradient checkpointing", inp.with_(grad_ckpt=True)))
    if inp.stage < 3:
        off = inp.offload if inp.offload != "all" else "none"
        out.append(("use ZeRO-3", inp.with_(stage=3, offload=off)))
    mb = inp.micro_batch // 2
    while mb >= 1:
        out.append((f"lower micro_batch to {mb} (raise grad_accum to keep the global batch)",
                    inp.with_(micro_batch=mb)))
        mb //= 2
    if inp.offload == "none":
        out.append(("offload the optimizer to the host (ZeRO-" + str(max(inp.stage, 2)) + ", offload = \"optimizer\")",
                    inp.with_(stage=max(inp.stage, 2), offload="optimizer")))
    if inp.offload != "all":
        out.append(("use ZeRO-3 with parameter and optimizer offload (offload = \"all\")",
                    inp.with_(stage=3, offload="all")))
    s = inp.seq_len // 2
    while s >= 256:
        out.append((f"shorten seq_len to {s}", inp.with_(seq_len=s)))
        s //= 2
    return out


def _levers(inp: PlanInput) -> list[tuple[str, PlanInput]]:
    """The same changes applied one on top of the other, in cost order."""
    cur, out = inp, []
    if cur.attn == "eager":
        cur = cur.with_(attn="sdpa")
        out.append(("use sdpa attention", cur))
    if not cur.grad_ckpt:
        cur = cur.with_(grad_ckpt=True)
        out.append(("turn on gradient checkpointing", cur))
    if cur.stage < 3:
        cur = cur.with_(stage=3, offload=cur.offload if cur.offload != "all" else "none")
        out.append(("use ZeRO-3", cur))
    if cur.micro_batch > 1:
        cur = cur.with_(micro_batch=1)
        out.append(("micro_batch 1", cur))
    if cur.offload == "none":
        cur = cur.with_(offload="optimizer")
        out.append(("offload the optimizer", cur))
    if cur.offload != "all":
        cur = cur.with_(offload="all")
        out.append(("offload parameters too", cur))
    s = cur.seq_len // 2
    while s >= 256:
        cur = cur.with_(seq_len=s)
        out.append((f"seq_len {s}", cur))
        s //= 2
    return out


def _host_note(inp: PlanInput, changed: PlanInput) -> str:
    if changed.offload == inp.offload:
        return ""
    return f" (needs ~{estimate(changed).host_gib:.0f} GiB host RAM per node)"


def suggest(inp: PlanInput, fits: Callable[[PlanInput], bool]) -> str:
    for text, changed in _changes(inp):
        if fits(changed):
            return text + _host_note(inp, changed)
    steps = []
    for text, changed in _levers(inp):
        steps.append(text)
        if fits(changed):
            return "no single change fits; together: " + ", ".join(steps) + _host_note(inp, changed)
    return f"does not fit on {inp.cards} x {inp.card_gb:g} GB cards even with every change: add cards"


def max_micro_batch(inp: PlanInput, fits: Callable[[PlanInput], bool], limit: int = MICRO_BATCH_SEARCH) -> int | None:
    """The largest micro-batch up to `limit` whose plan fits (not tight); None when 1 does not."""
    def ok(b: int) -> bool:
        return fits(inp.with_(micro_batch=b)) and verdict_of(estimate(inp.with_(micro_batch=b)).hard,
                                                             inp.card_gb) == "fits"

    if not ok(1):
        return None
    lo, hi = 1, 2
    while hi <= limit and ok(hi):
        lo, hi = hi, hi * 2
    if hi > limit:
        if ok(limit):
            return limit
        hi = limit
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


def largest_micro_batch(inp: PlanInput, fits: Callable[[PlanInput], bool], *, samples: int | None = None,
                        grad_accum: int = 1) -> tuple[int | None, MicroBatchBound | None]:
    """The largest micro-batch that fits and what bounds it. A step takes micro_batch x grad_accum
    samples on every card, so a micro-batch above samples / (cards x grad_accum) has nothing to fill it."""
    data_cap = max(1, samples // (max(1, grad_accum) * max(1, inp.cards * inp.nodes))) if samples else None
    limit = min(MICRO_BATCH_SEARCH, data_cap) if data_cap else MICRO_BATCH_SEARCH
    mb = max_micro_batch(inp, fits, limit)
    if mb is None or mb < limit:
        return mb, None if mb is None else "memory"
    return mb, "data" if limit == data_cap else "search"


def recommended_samples_note(arch: ModelArch, samples: int | None) -> str | None:
    if not samples:
        return None

    rec = recommended_samples(arch.params())
    return f"{samples} samples, {rec} recommended: {data_verdict(samples, rec)}"


def recipe_probe_key(recipe: Any) -> tuple[Any, ...]:
    """The configuration a probe of `recipe` measured (`calibration.probe_measurements` keys)."""
    return probe_key(recipe.name, recipe.launch.backend, recipe.hardware.device, recipe.hardware.cards,
                     recipe.train.micro_batch, recipe.train.seq_len, recipe.zero.stage, recipe.zero.offload)


def plan_recipe(recipe: Any, *, calibration: CalibrationTable | None = None,
                probes: dict[tuple[Any, ...], ProbeMeasurement] | None = None) -> Plan:
    """The Plan for one (non-grid) Recipe; with a calibration table (from this machine's runs, see
    `calibration.calibration_table`) the factor for its device and backend is applied beside the raw
    figure, and with the store's probes (`calibration.probe_measurements`) a probe of this very
    configuration decides the range and the verdict."""
    inp = input_from_recipe(recipe)
    calib = calibration.get((inp.device, recipe.launch.backend)) if calibration else None
    probe = probes.get(recipe_probe_key(recipe)) if probes else None
    p = plan(inp, calibration=calib, recipe_name=recipe.name, samples=recipe.data.samples,
             grad_accum=recipe.train.grad_accum, probe=probe)
    p.data_advice = recommended_samples_note(inp.arch, recipe.data.samples)
    return p


def matrix(*, cards: int = 8, card_gb: float = 64.0, device: Literal["npu", "cuda", "cpu"] = "npu",
           method: Literal["lora", "full", "freeze"] = "lora",
           seq_len: int = 2048, micro_batch: int = 1, models: list[str] | None = None) -> list[dict[str, Any]]:
    """Models x ZeRO stages: per-card GiB that must fit (and the figure a monitor would show) and the
    verdict of each cell."""
    rows = []
    for name in models or MATRIX_MODELS:
        arch = lookup(name)
        row: dict[str, Any] = {"model": name, "params_b": round(arch.params_b, 2)}
        for stage in (0, 1, 2, 3):
            inp = PlanInput(arch=arch, method=method, stage=stage, cards=cards, card_gb=card_gb,
                            device=device, seq_len=seq_len, micro_batch=micro_batch)
            validate_input(inp)
            bd = estimate(inp)
            # The figure that must fit (what the verdict reads): monotone across stages, while the
            # allocator's elastic cache is not (DeepSpeed allocates its states before the first
            # logits, torch's optimizer after them, into the cache; memory.py, "headroom").
            row[f"z{stage}_gib"] = round(bd.hard, 1)
            row[f"z{stage}_shown_gib"] = round(bd.total, 1)
            row[f"z{stage}"] = verdict_of(bd.hard, card_gb)
        rows.append(row)
    return rows
