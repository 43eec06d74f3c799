"""The DeepSpeed config JSON a recipe needs, with every value a number (never "auto").

LLaMA-Factory's shipped `ds_z*_config.json` files leave batch sizes, clipping, precision and the
ZeRO-3 bucket sizes as "auto" for the HF Trainer to fill in. zerodeck also launches plain
`deepspeed`/`torchrun` scripts that have no Trainer, and DeepSpeed's own config classes silently
drop or choke on "auto" (see `DeepSpeedConfig` raising `'>' not supported between str and int`),
so the numbers are resolved here the way the HF integration would resolve them.

`train_batch_size` is deliberately left out: DeepSpeed derives it from micro batch × accumulation ×
world size, and a fixed value breaks whenever the launcher and the Trainer disagree on the world
size (transformers 5.x on CPU sees world size 1 and asserts `4 != 2 * 2 * 2`).

Pure data, no deepspeed import: validation against DeepSpeed's classes lives in `ds_validate`,
which runs in a child process.
"""

from __future__ import annotations

import json
from typing import Any

from zerodeck.core.plan.registry import from_config, lookup
from zerodeck.core.recipe.model import Recipe

# HF Trainer's default max_grad_norm, what "gradient_clipping": "auto" resolves to.
DEFAULT_GRAD_CLIP = 1.0
# Used when the model's hidden size cannot be known (a path without a readable config.json).
FALLBACK_HIDDEN = 4096
# DeepSpeed's and LLaMA-Factory's reduce / all-gather bucket, in elements.
BUCKET_DEFAULT = 500_000_000


def model_hidden(recipe: Recipe) -> int:
    """The model's hidden size, for the ZeRO-3 bucket sizes the HF integration derives from it."""

    try:
        if recipe.model.name:
            return lookup(recipe.model.name).hidden
        if recipe.model.path:
            return from_config(recipe.model.path).hidden
    except (LookupError, OSError, ValueError, KeyError):
        pass
    return FALLBACK_HIDDEN


def reduce_bucket_elems(recipe: Recipe) -> int:
    """ZeRO-1/2's gradient bucket: DeepSpeed allocates `reduce_bucket_size` elements at every
    backward whatever the trainable count (stage_1_and_2.py: `torch.empty(int(self.reduce_bucket_size))`),
    so a LoRA run with 20M adapter weights would carry a 1 GiB bucket; no bucket needs to be larger
    than the trainable parameters (the planner counts the same, `core/plan/memory.py`)."""
    from zerodeck.core.plan.memory import trainable_params
    from zerodeck.core.plan.verdict import input_from_recipe

    try:
        trainable = trainable_params(input_from_recipe(recipe))
    except Exception:  # noqa: BLE001 - an unreadable model keeps DeepSpeed's default bucket
        return BUCKET_DEFAULT
    return max(1, min(BUCKET_DEFAULT, trainable))


def _offload(device: str, pin: bool) -> dict[str, Any]:
    return {"device": device, "pin_memory": pin}


def _zero_section(recipe: Recipe) -> dict[str, Any]:
    stage = recipe.zero.stage
    offload = recipe.zero.offload
    # Pinned memory needs an accelerator; on a CPU-only run it is just an extra copy.
    pin = recipe.hardware.device != "cpu"
    zero: dict[str, Any] = {"stage": stage}
    if stage == 3:
        hidden = model_hidden(recipe)
        zero.update(
            {
                "overlap_comm": False,
                "contiguous_gradients": True,
                "sub_group_size": 1_000_000_000,
                # HF's resolution of the "auto" values (integrations/deepspeed.py).
                "reduce_bucket_size": hidden * hidden,
                "stage3_prefetch_bucket_size": int(0.9 * hidden * hidden),
                "stage3_param_persistence_threshold": 10 * hidden,
                "stage3_max_live_parameters": 1_000_000_000,
                "stage3_max_reuse_distance": 1_000_000_000,
                "stage3_gather_16bit_weights_on_model_save": True,
            }
        )
        if offload in ("optimizer", "all"):
            zero["offload_optimizer"] = _offload("cpu", pin)
        if offload == "all":
            zero["offload_param"] = _offload("cpu", pin)
    else:
        zero.update(
            {
                "allgather_partitions": True,
                "allgather_bucket_size": BUCKET_DEFAULT,
                "overlap_comm": False,
                "reduce_scatter": True,
                "reduce_bucket_size": reduce_bucket_elems(recipe),
                "contiguous_gradients": True,
                "round_robin_gradients": stage in (1, 2),
            }
        )
        if offload == "optimizer" and stage > 0:
            zero["offload_optimizer"] = _offload("cpu", pin)
    return zero


def render_ds_config(recipe: Recipe) -> dict[str, Any]:
    """The DeepSpeed config for `recipe`, LLaMA-Factory-shaped, with numbers instead of "auto"."""
    precision = recipe.train.precision
    config: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": recipe.train.micro_batch,
        "gradient_accumulation_steps": recipe.train.grad_accum,
        "gradient_clipping": DEFAULT_GRAD_CLIP,
        "zero_allow_untested_optimizer": True,
        "fp16": {
            "enabled": precision == "fp16",
            "loss_scale": 0,
            "loss_scale_window": 1000,
            "initial_scale_power": 16,
            "hysteresis": 2,
            "min_loss_scale": 1,
        },
        "bf16": {"enabled": precision == "bf16"},
        "zero_optimization": _zero_section(recipe),
        "steps_per_print": 1_000_000,  # the trainers print their own step lines
        "wall_clock_breakdown": False,
    }
    return config


def dumps(config: dict[str, Any]) -> str:
    return json.dumps(config, indent=2) + "\n"
