"""The ms-swift backend: a recipe becomes `swift sft --model ... --tuner_type lora ...`.

ModelScope's ms-swift is the other trainer people fine-tune Qwen with on 910B servers (it documents
NPU support and publishes 910B memory tables). Its documented multi-card launch is environment
variables, not flags: with `NPROC_PER_NODE` set, `swift sft` re-runs itself under
`python -m torch.distributed.run --nproc_per_node N --master_port P` with its own interpreter, and
the visible cards come from `ASCEND_RT_VISIBLE_DEVICES` / `CUDA_VISIBLE_DEVICES`.

Rendered as argv (every value a string ms-swift parses itself), with the DeepSpeed JSON zerodeck
renders for every backend written beside it (numbers, never "auto") and passed by path, and the
output directory fixed inside the run directory (`--add_version false`: otherwise ms-swift adds a
`v0-<timestamp>` folder and its `logging.jsonl` could not be found).

ms-swift 4 renamed `--train_type` to `--tuner_type` and accepts no alias, so the flag follows the
version installed beside the `swift` executable (3.x gets `--train_type`).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from zerodeck.core.launch import backends
from zerodeck.core.launch.backends import RenderError, resolve
from zerodeck.core.launch.context import Launch, RenderContext
from zerodeck.core.launch.ds_config import dumps as ds_dumps
from zerodeck.core.launch.ds_config import render_ds_config
from zerodeck.core.launch.environment import job_env
from zerodeck.core.launch.llamafactory import dist_text, extensions_dir, model_name_or_path
from zerodeck.core.recipe.model import ModelSpec, Recipe

BACKEND = "swift"
CLI_ENV = "ZERODECK_SWIFT_CLI"
DS_NAME = "ds_config.json"
ENV_NAME = "swift_env.json"
ENV_PACKAGES = ("ms_swift", "modelscope", "transformers", "torch", "torch_npu", "deepspeed", "peft", "trl")
_DTYPE = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
_ATTN = {"sdpa": "sdpa", "flash": "flash_attn", "eager": "eager"}
_OPTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def find_cli(recipe: Recipe) -> Path:
    """The `swift` to run: launch.options["cli"], else $ZERODECK_SWIFT_CLI, else PATH."""
    return backends.find_cli(recipe, "swift", CLI_ENV, "ms-swift")


def swift_version(cli: Path) -> tuple[int, int] | None:
    """The ms-swift version installed in the environment of `cli`, from its dist-info name."""
    m = re.match(r"(\d+)\.(\d+)", dist_text(cli.parent.parent, "ms_swift"))
    return (int(m.group(1)), int(m.group(2))) if m else None


def render(recipe: Recipe, ctx: RenderContext) -> Launch:
    cli = find_cli(recipe)
    files: dict[str, str] = {}
    args = training_args(recipe, ctx, files, swift_version(cli))
    files[ENV_NAME] = json.dumps(cli_environment(cli), indent=2) + "\n"
    command = "pt" if recipe.data.format == "text" else "sft"
    return Launch(backend=BACKEND, argv=[str(cli), command, *to_argv(args)], env=launch_env(recipe, ctx, cli),
                  files=files, cwd=ctx.run_dir, ranks=recipe.hardware.cards)


def training_args(recipe: Recipe, ctx: RenderContext, files: dict[str, str],
                  version: tuple[int, int] | None = None) -> dict[str, Any]:
    """The `swift sft` arguments by name (without the dashes); adds the DeepSpeed JSON to `files`."""
    method, train = recipe.method, recipe.train
    if method.kind == "freeze":
        raise RenderError("method.kind: 'freeze' has no ms-swift equivalent here; use 'lora' or 'full'")
    model_path = model_name_or_path(recipe.model, ctx.recipe_dir)
    # 3.x names it train_type; 4.x tuner_type, with no alias. Unknown: the current name.
    tuner = "train_type" if version is not None and version < (4, 0) else "tuner_type"
    args: dict[str, Any] = {"model": model_path, tuner: method.kind, "torch_dtype": _DTYPE[train.precision],
                            # Said outright: ms-swift turns fp16 mixed precision on for float32 weights,
                            # which then contradicts the DeepSpeed JSON (HF refuses the mismatch).
                            "bf16": train.precision == "bf16", "fp16": train.precision == "fp16",
                            "attn_impl": _ATTN[train.attn]}
    if method.kind == "lora":
        target = ["all-linear"] if method.target in ("all", ["all"]) else (
            [method.target] if isinstance(method.target, str) else list(method.target))
        args.update(lora_rank=method.rank, lora_alpha=method.alpha, lora_dropout=method.dropout,
                    target_modules=target)
    if method.quant_bits:
        args.update(quant_method="bnb", quant_bits=method.quant_bits)
    if recipe.zero.stage > 0:
        ds_recipe = recipe
        if recipe.model.path:  # so the ZeRO-3 bucket sizes come from the model's own config.json
            ds_recipe = recipe.model_copy(update={"model": ModelSpec(path=model_path)})
        ds = render_ds_config(ds_recipe)
        ds.pop("train_batch_size", None)  # derived by DeepSpeed from the world size, as for LLaMA-Factory
        files[DS_NAME] = ds_dumps(ds)
        args["deepspeed"] = str(ctx.run_dir / DS_NAME)
    args["dataset"] = [_dataset(recipe, ctx)]
    if recipe.data.template:
        args["template"] = recipe.data.template
    args.update({
        "max_length": train.seq_len,
        "per_device_train_batch_size": train.micro_batch,
        "gradient_accumulation_steps": train.grad_accum,
        "learning_rate": train.lr,
        "num_train_epochs": train.epochs,
        "gradient_checkpointing": train.grad_ckpt,
        "seed": train.seed,
        "logging_steps": train.logging_steps,
        "output_dir": str(_output_dir(recipe, ctx)),
        "add_version": False,
        "report_to": ["none"],
        # 3.x splits 1 % of the data off for evaluation by default; 4.x does not. The same run either way.
        "split_dataset_ratio": 0.0,
    })
    if train.max_steps:
        args["max_steps"] = train.max_steps
    # The recipe's own ms-swift options win; "cli" picks the executable and is not an argument.
    args.update({k: v for k, v in recipe.launch.options.items() if k != "cli"})
    return args


def to_argv(args: dict[str, Any]) -> list[str]:
    """`--name value` pairs as ms-swift parses them: lists as several values, booleans as true/false."""
    out: list[str] = []
    for key, value in args.items():
        if not _OPTION_NAME.fullmatch(key):
            raise RenderError(f"launch.options: {key!r} is not an ms-swift argument name")
        if value is None:
            continue
        out.append(f"--{key}")
        values = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, dict):
                out.append(json.dumps(v, separators=(",", ":")))
            elif isinstance(v, bool):
                out.append("true" if v else "false")
            else:
                out.append(str(v))
    return out


def launch_env(recipe: Recipe, ctx: RenderContext, cli: Path) -> dict[str, str]:
    """ms-swift's documented multi-card variables on top of what every backend sets."""
    env = job_env(recipe, ctx)
    env.update({"NPROC_PER_NODE": str(recipe.hardware.cards), "MASTER_PORT": str(ctx.master_port),
                "MASTER_ADDR": "127.0.0.1"})
    if "TORCH_EXTENSIONS_DIR" not in os.environ:
        env["TORCH_EXTENSIONS_DIR"] = str(extensions_dir(cli))  # the CLI's DeepSpeed ops, not zerodeck's
    if recipe.hardware.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # a CPU recipe stays on the CPU even on a GPU host
    env.update(recipe.launch.env)
    return env


def cli_environment(cli: Path) -> dict[str, str | None]:
    """The `swift` path and the versions of the packages an ms-swift run depends on, where readable."""
    root = cli.parent.parent
    out: dict[str, str | None] = {"cli": str(cli)}
    for dist in ENV_PACKAGES:
        text = dist_text(root, dist)
        out[dist] = None if text == "unknown" else text
    return out


def _dataset(recipe: Recipe, ctx: RenderContext) -> str:
    data = recipe.data
    if data.path:
        name = str(resolve(data.path, ctx.recipe_dir).resolve())
    elif data.dataset:
        name = data.dataset  # a ModelScope / Hugging Face dataset id
    else:
        raise RenderError("data: the swift backend needs `path` (a local file) or `dataset` (a hub dataset id)")
    # ms-swift's `id_or_path#count` takes a sample of that many rows.
    return f"{name}#{data.samples}" if data.samples else name


def _output_dir(recipe: Recipe, ctx: RenderContext) -> Path:
    out = recipe.launch.output_dir
    return resolve(out, ctx.recipe_dir).resolve() if out else ctx.run_dir / "output"
