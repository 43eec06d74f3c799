"""Accuracy of the memory model against published measurements (tests/fixtures/memory/measured-dev.csv,
a copy of ../shared/corpus/memory/measured-dev.csv).

Prints the median, p90 and worst absolute percentage error of the predicted per-card peak against
every measured row it can map (and by group: checkpointing, ZeRO stage, method, how the figure was
read), the fits/OOM agreement on every row with an outcome and the rows that disagree, the
excluded rows with the reason (`tests/test_plan_accuracy.py: EXCLUDED` holds the list), and the
seed scenarios on 8 x 64 GB 910B. Run: .venv/bin/python bench/bench_plan_accuracy.py [-v]
"""

from __future__ import annotations

import csv
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from zerodeck.core.plan.memory import LORA_MODULES, PlanInput, estimate
from zerodeck.core.plan.registry import ModelArch, lookup
from zerodeck.core.plan.verdict import verdict_of

CSV = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "memory" / "measured-dev.csv"

# Architectures of the measured models that zerodeck's registry does not ship (their config.json
# values; parameter counts reproduce the params_b column). Qwen v1 is multi-head (kv = heads) with
# a qkv bias; GPT-2 shapes are mapped to the same parameter count (4h MLP as a 2/3-wide gated one).
ARCHS = {
    "Qwen-1.8B": ModelArch("Qwen-1.8B", 2048, 24, 16, 16, 5504, 151936, False),
    "Qwen-7B": ModelArch("Qwen-7B", 4096, 32, 32, 32, 11008, 151936, False),
    "Qwen-14B": ModelArch("Qwen-14B", 5120, 40, 40, 40, 13696, 152064, False),
    "Qwen-72B": ModelArch("Qwen-72B", 8192, 80, 64, 64, 24576, 152064, False),
    "Qwen1.5-32B": ModelArch("Qwen1.5-32B", 5120, 64, 40, 8, 27392, 152064, False),
    "Qwen2-72B": lookup("Qwen2.5-72B"),
    "GPT-2 1.5B": ModelArch("GPT-2 1.5B", 1600, 48, 25, 25, 4266, 50257, True, False),
    "GPT-2 10B": ModelArch("GPT-2 10B", 4096, 50, 32, 32, 10922, 50257, True, False),
}
QKV = ("q_proj", "k_proj", "v_proj")
PIPELINE = "device_map"


def arch_for(model: str) -> ModelArch | None:
    for key in sorted(ARCHS, key=len, reverse=True):
        if model.startswith(key):
            return ARCHS[key]
    return None


SAME_SETUP = ("source_url", "model", "method", "lora_rank", "precision", "zero_stage", "offload",
              "n_devices", "micro_batch", "grad_ckpt", "notes")
NON_MONOTONE = ("same source and settings report more memory here than at a longer sequence "
                "(memory cannot fall as sequences grow; the row disagrees with its own neighbours)")


SUMMED_DDP = ("ms-swift DDP: its logged memory sums torch.cuda.max_memory_reserved over every device the "
              "process sees (ms-swift 2.x swift/trainers/mixin.py, SwiftMixin.get_max_cuda_memory: "
              "range(torch.cuda.device_count())), and data parallelism adds a card only DDP's "
              "bucket copy of the trainable parameters (17.89M, < 0.1 GiB), yet the row is 7.6 GiB above "
              "the same run on one card (row 139): not one card's figure")


def non_monotone(rows: list[dict[str, str]], slack: float = 0.05) -> set[int]:
    """Rows whose figure exceeds, by more than `slack`, the figure the same source reports for the
    same setup at a longer sequence: one of the two is a misprint, and the longer-sequence figure is
    the one that agrees with the rest of the series."""
    groups: dict[tuple[str, ...], list[tuple[int, float, int]]] = {}
    for i, r in enumerate(rows):
        if r["measured_peak_gb_per_device"] and r["seq_len"]:
            key = tuple(r[k] for k in SAME_SETUP)
            groups.setdefault(key, []).append((int(r["seq_len"]), float(r["measured_peak_gb_per_device"]), i))
    bad = set()
    for series in groups.values():
        for seq, gib, i in series:
            if any(s2 > seq and g2 < gib * (1 - slack) for s2, g2, _ in series):
                bad.add(i)
    return bad


def excluded(i: int, r: dict[str, str], inconsistent: set[int] | frozenset[int] = frozenset()) -> str | None:
    if not r["estimated_or_measured"].startswith("measured"):
        return "published estimate, not a measurement (no batch, length or ZeRO setting)"
    if PIPELINE in r["notes"]:
        return "naive model parallelism (device_map splits layers over cards), not data parallel"
    if "treat with caution" in r["notes"]:
        return "source flags it as inconsistent with its own profile (full 1.8B on 24 GB)"
    if r["method"] == "full" and "launch script for this profile not stated" in r["notes"]:
        return ("launch not stated; 43.5 G flat over 256-2048 tokens is 23.6 bytes/param, more than "
                "any optimizer layout it could be (pure bf16 8, mixed 16)")
    if i in inconsistent:
        return NON_MONOTONE
    if "max_memory_reserved" in r["notes"] and "DDP" in r["notes"] and int(r["n_devices"]) > 1:
        return SUMMED_DDP
    if arch_for(r["model"]) is None:
        return "architecture unknown"
    return None


def to_input(r: dict[str, str]) -> PlanInput:
    arch = arch_for(r["model"])
    assert arch is not None
    notes = r["notes"]
    method = r["method"]
    prec = r["precision"]
    quant = None
    if method == "qlora":
        quant = 8 if "int8" in prec.lower() else 4
    kind = "lora" if method in ("lora", "qlora") else method
    freeze_layers = 2
    if "LISA" in notes:
        kind = "freeze"
    target = LORA_MODULES
    if "ms-swift" in notes and "ALL" not in notes:
        target = QKV  # swift's DEFAULT target for Qwen v1 is c_attn only
    offload = r["offload"]
    off = "all" if "param" in offload else ("optimizer" if "optimizer" in offload else "none")
    seq = int(r["seq_len"] or 512)  # Qwen scripts' default model_max_length
    source_qwen_readme = "Qwen v1 README profiling" in notes
    qwen_v1 = r["model"].startswith("Qwen-")
    stage = int(r["zero_stage"])
    # Unstated gradient checkpointing: a user's own HF Trainer script with its own ds_config gets
    # the Trainer's default, off (TrainingArguments.gradient_checkpointing=False); the Qwen
    # repositories' scripts and LLaMA-Factory, which the Qwen2 README points to, turn it on.
    own_script = "ds_config stage" in notes or "same ds_config" in notes
    ckpt = r["grad_ckpt"] == "true" or (not r["grad_ckpt"] and not own_script)
    # Qwen v1's finetune/ds_config_zero2.json: reduce_bucket_size 2e8, overlap_comm true. Other
    # DeepSpeed sources state no bucket: DeepSpeed's default, 5e8 elements, one buffer.
    bucket, overlap = 5e8, "overlap_comm true" in notes
    if qwen_v1 and stage in (1, 2):
        bucket, overlap = 2e8, True
    # Dynamic padding: the cached blocks of other batch lengths scale with a typical (median)
    # sample. The source states its dataset's length as mean +- sd ("3234+-2547 tokens"); token
    # counts of text are right-skewed, so the median is taken as a log-normal's with that mean and
    # spread: mean / sqrt(1 + (sd / mean)^2). A row trained on another dataset (the Tuners table's
    # ms-agent mix) states none, and gets what the planner assumes without data: seq_len.
    stated = re.search(r"\((\d+)\+-(\d+) tokens", notes)
    typical = None
    if stated and "ms-agent" not in notes:
        mean, sd = float(stated.group(1)), float(stated.group(2))
        typical = round(mean / (1 + (sd / mean) ** 2) ** 0.5)
    return PlanInput(
        arch=arch, method=kind, lora_rank=int(r["lora_rank"] or 8), lora_target=target,  # type: ignore[arg-type]
        freeze_layers=freeze_layers, stage=int(r["zero_stage"]), offload=off,  # type: ignore[arg-type]
        cards=int(r["n_devices"]), card_gb=float(r["device_mem_gb"]), device="cuda",
        micro_batch=int(r["micro_batch"] or 1), seq_len=seq,
        grad_ckpt=ckpt, reduce_bucket=bucket, overlap_comm=overlap,
        attn="eager" if ("use_flash_attn=False" in notes or "eager" in notes) else "flash",
        precision="fp16" if prec.startswith("fp16") else "bf16",
        pure_16bit=prec.startswith("bf16-pure"),
        train_embeddings="LoRA (emb)" in notes,
        quant_bits=quant,
        quant_format="bnb" if "bnb" in prec else "gptq",
        # Qwen v1 finetune.py pads every sample to model_max_length; swift and LLaMA-Factory pad per batch.
        fixed_length=source_qwen_readme,
        typical_len=typical,
        reserved_only="max_memory_reserved" in notes,
        # Qwen v1's remote code computes CrossEntropyLoss on the 16-bit logits; only autocast (HF
        # Trainer without DeepSpeed) would upcast them, and DeepSpeed runs without autocast.
        # Qwen v1's remote code takes the cross-entropy of the 16-bit logits; whether anything
        # upcasts them depends on the precision: the source's own fp16 Q-LoRA series under
        # DeepSpeed grows by ~9 bytes per vocab entry and token (16-bit loss), its bf16 LoRA series
        # under DeepSpeed by ~14 (fp32 loss, as the single-card bf16 runs under autocast).
        loss_fp32=not (qwen_v1 and stage > 0 and prec.startswith("fp16")),
        # Qwen v1's remote modeling code upcasts the logits in the model and copies the shifted
        # logits (`shift_logits = lm_logits[..., :-1, :].contiguous()`).
        loss_impl="shift_copy" if qwen_v1 else "hf",
    )


def evaluate(verbose: bool = False) -> dict[str, Any]:
    rows = list(csv.DictReader(CSV.open(encoding="utf-8")))
    inconsistent = non_monotone(rows)
    errors: list[tuple[float, int, str, float, float]] = []
    by_group: dict[str, list[float]] = {}
    errors16: list[float] = []
    agree = total_outcomes = 0
    wrong: list[str] = []
    excl: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        why = excluded(i, r, inconsistent)
        if why:
            excl.setdefault(why, []).append(i)
            continue
        inp = to_input(r)
        bd = estimate(inp)
        if r["measured_peak_gb_per_device"]:
            meas = float(r["measured_peak_gb_per_device"])
            e = (bd.total - meas) / meas * 100
            errors.append((e, i, r["model"], bd.total, meas))
            for g in ("ckpt" if inp.grad_ckpt else "no ckpt", f"ZeRO-{inp.stage}", r["method"],
                      "reserved (torch)" if inp.reserved_only else "card monitor"):
                by_group.setdefault(g, []).append(abs(e))
            if inp.quant_bits is None:
                errors16.append(abs(e))
        if r["outcome"] in ("fits", "oom"):
            total_outcomes += 1
            pred = "oom" if verdict_of(bd.hard, inp.card_gb) == "oom" else "fits"
            if pred == r["outcome"]:
                agree += 1
            else:
                wrong.append(f"row {i} {r['model']} {r['method']} z{r['zero_stage']} s{inp.seq_len}: "
                             f"predicted {pred} ({bd.hard:.1f} GiB must fit), observed {r['outcome']}")
    abs_err = sorted(abs(e[0]) for e in errors)
    # measured / predicted: its 5th and 95th percentiles are the model-basis range of `plan --json`.
    cuts = statistics.quantiles([meas / pred for _, _, _, pred, meas in errors], n=20, method="inclusive")
    if verbose:
        for e, i, m, pred, meas in errors:
            print(f"  row {i:3d} {m:<22} predicted {pred:6.1f}  measured {meas:6.1f}  {e:+6.1f} %")
    return {
        "rows": len(rows), "measured": len(errors),
        "median_abs_pct": statistics.median(abs_err), "worst_abs_pct": abs_err[-1],
        "p90_abs_pct": abs_err[int(0.9 * (len(abs_err) - 1))],
        "worst_row": max(errors, key=lambda e: abs(e[0]))[1],
        "median16": statistics.median(errors16), "worst16": max(errors16), "n16": len(errors16),
        "ratio_spread": (round(cuts[0], 3), round(cuts[-1], 3)),
        "outcomes": total_outcomes, "agree": agree, "wrong": wrong, "excluded": excl,
        "groups": {g: (len(v), statistics.median(v), max(v)) for g, v in sorted(by_group.items())},
    }


def seeds() -> list[str]:
    out = []
    for model, stage, expect in [("Qwen2.5-14B", 0, "fits"), ("Qwen2.5-32B", 0, "oom"),
                                 ("Qwen2.5-32B", 3, "fits"), ("Qwen2.5-72B", 3, "fits")]:
        inp = PlanInput(arch=lookup(model), stage=stage)
        bd = estimate(inp)
        v = verdict_of(bd.hard, 64.0)
        out.append(f"  {model} LoRA ZeRO-{stage}: {bd.total:.1f} GiB shown, {bd.hard:.1f} must fit -> {v}"
                   f" (users saw {expect}) {'OK' if (v == 'oom') == (expect == 'oom') else 'WRONG'}")
    return out


def main() -> None:
    verbose = "-v" in sys.argv
    t0 = time.perf_counter()
    res = evaluate(verbose)
    dt = time.perf_counter() - t0
    print(f"measured rows compared: {res['measured']} of {res['rows']}")
    print(f"median |error| {res['median_abs_pct']:.1f} %, p90 {res['p90_abs_pct']:.1f} %, "
          f"worst {res['worst_abs_pct']:.1f} % (row {res['worst_row']})")
    print(f"16-bit bases only (what recipes plan; no QLoRA), {res['n16']} rows: median {res['median16']:.1f} %, "
          f"worst {res['worst16']:.1f} %")
    lo, hi = res["ratio_spread"]
    print(f"measured / predicted, 5th-95th percentile: {lo:.3f} .. {hi:.3f} (the model-basis range)")
    print("median |error| by group (rows, median, worst):")
    for g, (n, med, worst) in res["groups"].items():
        print(f"  {g:<17} {n:3d}  {med:4.1f} %  {worst:4.1f} %")
    print(f"fits/OOM agreement: {res['agree']} of {res['outcomes']} "
          f"({100 * res['agree'] / max(1, res['outcomes']):.1f} %)")
    for w in res["wrong"]:
        print("  " + w)
    print("excluded:")
    for why, idx in res["excluded"].items():
        print(f"  {len(idx):3d} rows ({', '.join(map(str, idx)) if len(idx) <= 3 else f'{idx[0]}..{idx[-1]}'}): {why}")
    print("seed scenarios, 8 x 64 GB 910B, LoRA r8, seq 2048, micro-batch 1:")
    print("\n".join(seeds()))
    print(f"evaluated in {dt * 1000:.1f} ms")
    from zerodeck.core.plan.verdict import matrix

    t0 = time.perf_counter()
    matrix()
    inproc = time.perf_counter() - t0
    exe = Path(sys.executable).with_name("zerodeck")
    t0 = time.perf_counter()
    subprocess.run([str(exe), "plan", "--matrix"], capture_output=True, check=True)
    print(f"plan --matrix: {inproc * 1000:.1f} ms in process, {time.perf_counter() - t0:.2f} s as a command")


if __name__ == "__main__":
    main()
