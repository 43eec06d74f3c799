"""The `builtin` backend: zerodeck's tiny trainer (core/launch/trainer.py) under torchrun.

Renders the DeepSpeed config and a job file with everything the rank script needs (model shape
from the registry, the dataset resolved against the recipe file, batch, steps), and launches
`python -m torch.distributed.run ... -m zerodeck.core.launch.trainer job.json` with the job's own
interpreter, so no console script has to be on PATH.

`launch.options`: `save_steps` writes a checkpoint every that many steps into the output directory
(`checkpoint-N`, complete when renamed into place); `rlimit_as_extra_mb` caps each rank's address
space that many MiB above its size after start-up (`rlimit_ranks` picks ranks) — the CPU stand-in
for running out of memory; `card_limit = true` holds each CPU rank to `hardware.card_gb` of resident
memory (what `zerodeck probe` sets, so a configuration that does not fit the recipe's card fails as a
device would).
"""

from __future__ import annotations

import json
from typing import Any

from zerodeck.core.launch.backends import RenderError, resolve
from zerodeck.core.launch.context import Launch, RenderContext
from zerodeck.core.launch.ds_config import dumps, render_ds_config
from zerodeck.core.launch.environment import job_env
from zerodeck.core.plan.registry import from_config, lookup
from zerodeck.core.recipe.model import Recipe

JOB_FILE = "job.json"
DS_CONFIG = "ds_config.json"
OPTIONS = {"rlimit_as_extra_mb", "rlimit_ranks", "dist_backend", "master_port", "card_limit", "save_steps"}


def job_spec(recipe: Recipe, ctx: RenderContext) -> dict[str, Any]:

    hf_config = None
    if recipe.model.path:
        # A local HF config (e.g. a tiny Qwen2 for bench/gpu_check.sh): the real architecture,
        # randomly initialised from config.json, trained by the same loop (needs transformers).
        model_dir = resolve(recipe.model.path, ctx.recipe_dir)
        try:
            arch = from_config(model_dir)
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise RenderError(f"model.path: {exc}") from None
        hf_config = str(model_dir)
    elif not recipe.model.name:
        raise RenderError("model.name: the builtin trainer needs a registry model such as 'zerodeck-tiny'")
    else:
        try:
            arch = lookup(recipe.model.name)
        except LookupError as exc:
            raise RenderError(f"model.name: {exc}") from None
    if not recipe.data.path:
        raise RenderError("data.path: the builtin trainer needs a dataset file (alpaca JSONL)")
    unknown = set(recipe.launch.options) - OPTIONS
    if unknown:
        raise RenderError(f"launch.options: unknown option(s) {', '.join(sorted(unknown))} "
                          f"for the builtin backend (known: {', '.join(sorted(OPTIONS))})")
    opts = recipe.launch.options
    save_steps = opts.get("save_steps")
    if save_steps is not None and (isinstance(save_steps, bool) or not isinstance(save_steps, int) or save_steps < 1):
        raise RenderError(f"launch.options.save_steps: a positive integer expected, not {save_steps!r}")
    out = recipe.launch.output_dir
    return {
        "hidden": arch.hidden, "layers": arch.layers, "heads": arch.heads,
        "intermediate": arch.intermediate, "vocab": max(arch.vocab, 258),
        "seq_len": recipe.train.seq_len, "micro_batch": recipe.train.micro_batch,
        "grad_accum": recipe.train.grad_accum, "epochs": recipe.train.epochs,
        "max_steps": recipe.train.max_steps, "lr": recipe.train.lr, "seed": recipe.train.seed,
        "device": recipe.hardware.device,
        "data_path": str(resolve(recipe.data.path, ctx.recipe_dir)), "data_format": recipe.data.format,
        "ds_config": str(ctx.run_dir / DS_CONFIG),
        "dist_backend": opts.get("dist_backend") or ("gloo" if recipe.hardware.device == "cpu" else None),
        "rlimit_as_extra_mb": opts.get("rlimit_as_extra_mb"),
        "rlimit_ranks": opts.get("rlimit_ranks", list(range(recipe.hardware.cards))),
        # CPU ranks held to hardware.card_gb (a probe sets it, so an OOM probe is a real OOM).
        "card_limit_mb": recipe.hardware.card_gb * 1024 if opts.get("card_limit") else None,
        "hf_config": hf_config, "grad_ckpt": recipe.train.grad_ckpt, "attn": recipe.train.attn,
        "save_steps": save_steps,
        # The same directory the launcher names in the launch spec (where `zerodeck resume` looks).
        "output_dir": str(resolve(out, ctx.recipe_dir) if out else ctx.run_dir / "output"),
        "resume_from": str(ctx.resume_from) if ctx.resume_from else None,
    }


def render(recipe: Recipe, ctx: RenderContext) -> Launch:
    job = job_spec(recipe, ctx)
    argv = [ctx.python, "-m", "torch.distributed.run", "--nnodes", "1",
            "--nproc_per_node", str(recipe.hardware.cards), "--master_addr", "127.0.0.1",
            "--master_port", str(ctx.master_port),
            "-m", "zerodeck.core.launch.trainer", str(ctx.run_dir / JOB_FILE)]
    files = {DS_CONFIG: dumps(render_ds_config(recipe)), JOB_FILE: json.dumps(job, indent=2) + "\n"}
    return Launch("builtin", argv, job_env(recipe, ctx), files, cwd=ctx.run_dir, ranks=recipe.hardware.cards)
