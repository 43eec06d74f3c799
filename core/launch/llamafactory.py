"""The LLaMA-Factory backend: a recipe becomes a training YAML and `llamafactory-cli train <yaml>`.

LLaMA-Factory is what Ascend 910B servers fine-tune with, so this is the backend most recipes use.
The YAML carries everything the run needs (model, method, data, batch sizes, the DeepSpeed JSON
next to it, an output directory inside the run directory, no external loggers), so a run directory
is self-contained and can be re-run by hand with the same command.

Traps this module steps around (each seen in real runs):
- `llamafactory-cli` with FORCE_TORCHRUN=1 starts `torchrun` by name; run from a venv that is not
  activated, that fails with `FileNotFoundError: ... 'torchrun'`. The CLI's own bin directory goes
  first on PATH.
- LLaMA-Factory re-joins its arguments with spaces for torchrun, so a YAML path with a space splits.
  The job runs in the run directory and names its YAML relative to it.
- A fixed `train_batch_size` in the DeepSpeed JSON asserts when the Trainer and the launcher
  disagree on the world size; the JSON never carries one.
- transformers 4.57 + LoRA + DeepSpeed under torch >= 2.10 dies at the first scheduler step
  (`zip() argument 2 is longer than argument 1`); that combination is refused before launch.
- DeepSpeed < 0.19.8 on CPU (gloo) ZeRO-3 waits for only the last all-gather of a coalesced
  parameter gather, so a weight gathered while the model loads can be read before it arrives: some
  runs train on uninitialized memory (NaN losses, gradient norms of 1e28) and still exit 0. Also
  refused before launch; GPU and NPU streams order the gathers, so they are not affected.

The YAML is written one `key: <JSON value>` per line: YAML reads JSON scalars, and zerodeck does
not depend on PyYAML. Floats always carry a decimal point, since YAML 1.1 loaders read `1e-05` as
a string.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

from zerodeck.core.errors import BadInput
from zerodeck.core.launch import backends
from zerodeck.core.launch.backends import RenderError
from zerodeck.core.launch.context import Launch, RenderContext
from zerodeck.core.launch.ds_config import dumps as ds_dumps
from zerodeck.core.launch.ds_config import render_ds_config
from zerodeck.core.launch.environment import job_env, ops_cache_dir
from zerodeck.core.plan.registry import lookup
from zerodeck.core.recipe.model import ModelSpec, Recipe

BACKEND = "llamafactory"
CLI_ENV = "ZERODECK_LLAMAFACTORY_CLI"
YAML_NAME = "llamafactory.yaml"
DS_NAME = "ds_config.json"
DATASET_INFO_NAME = "dataset_info.json"
# The versions in the CLI's environment: zerodeck's own record of versions describes zerodeck's venv.
ENV_NAME = "llamafactory_env.json"
ENV_PACKAGES = ("llamafactory", "transformers", "torch", "torch_npu", "deepspeed", "accelerate", "peft", "trl")
# The dataset name zerodeck registers when a recipe gives a data file instead of a dataset name.
DATASET_NAME = "zerodeck_data"

_ATTN = {"sdpa": "sdpa", "flash": "fa2", "eager": "disabled"}
_VISIBLE_ENV = {"npu": "ASCEND_RT_VISIBLE_DEVICES", "cuda": "CUDA_VISIBLE_DEVICES"}


def find_cli(recipe: Recipe) -> Path:
    """The `llamafactory-cli` to run: launch.options["cli"], else $ZERODECK_LLAMAFACTORY_CLI, else PATH."""
    return backends.find_cli(recipe, "llamafactory-cli", CLI_ENV, "LLaMA-Factory")


def model_name_or_path(model: ModelSpec, recipe_dir: Path) -> str:
    """A local path (resolved against the recipe's folder), else the model's Hugging Face id."""
    if model.path:
        return str(_resolve(model.path, recipe_dir))
    name = model.name or ""
    if "/" in name:
        return name  # already a hub id such as "Qwen/Qwen2.5-7B-Instruct"

    try:
        canonical = lookup(name).name
    except LookupError as exc:
        raise BadInput(f"model.name: {exc}; give a Hugging Face id (org/name) or model.path") from exc
    if not canonical.lower().startswith("qwen"):
        raise BadInput(f"model.name: {canonical!r} is not a Hugging Face model; give model.path or an org/name id")
    return f"Qwen/{canonical}"


def render(recipe: Recipe, ctx: RenderContext) -> Launch:
    cli = find_cli(recipe)
    _refuse_known_crash(recipe, cli)
    files: dict[str, str] = {}
    args = training_args(recipe, ctx, files)
    files[YAML_NAME] = dump_yaml(args)
    files[ENV_NAME] = json.dumps(cli_environment(cli), indent=2) + "\n"
    env = launch_env(recipe, ctx, cli)
    # Where trainer_log.jsonl lands, for the supervisor's metric points (LLaMA-Factory resolves a
    # relative output_dir from launch.options against its working directory, the run directory).
    env.setdefault("ZERODECK_OUTPUT_DIR", str(ctx.run_dir / str(args["output_dir"])))
    return Launch(
        backend=BACKEND,
        # Relative to cwd: LLaMA-Factory re-splits its argv on spaces before handing it to torchrun.
        argv=[str(cli), "train", YAML_NAME],
        env=env,
        files=files,
        cwd=ctx.run_dir,
        ranks=recipe.hardware.cards,
    )


def training_args(recipe: Recipe, ctx: RenderContext, files: dict[str, str]) -> dict[str, Any]:
    """The YAML's content; adds the DeepSpeed JSON and any generated dataset_info.json to `files`."""
    method, train = recipe.method, recipe.train
    model_path = model_name_or_path(recipe.model, ctx.recipe_dir)
    args: dict[str, Any] = {
        "model_name_or_path": model_path,
        "trust_remote_code": True,
        "flash_attn": _ATTN[train.attn],
        "stage": "pt" if recipe.data.format == "text" else "sft",
        "do_train": True,
        "finetuning_type": method.kind,
    }
    if method.kind == "lora":
        target = method.target if isinstance(method.target, str) else ",".join(method.target)
        args.update(lora_rank=method.rank, lora_alpha=method.alpha, lora_dropout=method.dropout, lora_target=target)
    elif method.kind == "freeze":
        args["freeze_trainable_layers"] = method.freeze_trainable_layers
    if method.quant_bits:
        # QLoRA: bitsandbytes quantises at load. A GPTQ / AWQ checkpoint needs nothing here: LLaMA-Factory
        # reads its quantization_config and refuses quantization_bit on an already quantised model.
        args.update(quantization_bit=method.quant_bits, quantization_method="bnb")
    if recipe.zero.stage > 0:
        ds_recipe = recipe
        if recipe.model.path:  # so the ZeRO-3 bucket sizes come from the model's own config.json
            ds_recipe = recipe.model_copy(update={"model": ModelSpec(path=model_path)})
        ds = render_ds_config(ds_recipe)
        # DeepSpeed derives it; a fixed value asserts when the world size is misread (see docstring).
        ds.pop("train_batch_size", None)
        files[DS_NAME] = ds_dumps(ds)
        args["deepspeed"] = str(ctx.run_dir / DS_NAME)
    args.update(_data_args(recipe, ctx, files))
    args.update(
        {
            "cutoff_len": train.seq_len,
            "output_dir": str(_output_dir(recipe, ctx)),
            "overwrite_output_dir": True,
            "logging_steps": train.logging_steps,
            # The Trainer's filter logs a NaN or inf loss as the mean of the earlier ones (0.0 from the
            # first step on): a diverged run would look healthy in zerodeck's points and curves.
            "logging_nan_inf_filter": False,
            "save_steps": 500,
            "plot_loss": True,
            "report_to": "none",
            "per_device_train_batch_size": train.micro_batch,
            "gradient_accumulation_steps": train.grad_accum,
            "learning_rate": train.lr,
            "num_train_epochs": train.epochs,
            "lr_scheduler_type": "cosine",
            "bf16": train.precision == "bf16",
            "fp16": train.precision == "fp16",
            "disable_gradient_checkpointing": not train.grad_ckpt,
            "seed": train.seed,
            "ddp_timeout": 180000000,
            "resume_from_checkpoint": str(ctx.resume_from) if ctx.resume_from else None,
        }
    )
    if train.max_steps:
        args["max_steps"] = train.max_steps
    # The recipe's own LLaMA-Factory options win; "cli" picks the executable and is not an argument.
    args.update({k: v for k, v in recipe.launch.options.items() if k != "cli"})
    return args


def launch_env(recipe: Recipe, ctx: RenderContext, cli: Path) -> dict[str, str]:
    """The run tag, port, device visibility every backend sets, plus LLaMA-Factory's launcher switches."""
    hw = recipe.hardware
    env = job_env(recipe, ctx)
    env.update(
        {
            "FORCE_TORCHRUN": "1",
            "NNODES": "1",
            "NPROC_PER_NODE": str(hw.cards),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(ctx.master_port),
            # torchrun is started by name: the CLI's environment must come first.
            "PATH": os.pathsep.join([str(cli.parent), os.environ.get("PATH", os.defpath)]),
        }
    )
    if "TORCH_EXTENSIONS_DIR" not in os.environ:
        env["TORCH_EXTENSIONS_DIR"] = str(extensions_dir(cli))  # the CLI's DeepSpeed, not zerodeck's
    if hw.device == "cpu":
        env["DS_ACCELERATOR"] = "cpu"
        env["CUDA_VISIBLE_DEVICES"] = ""  # a CPU recipe stays on the CPU even on a GPU host
    else:
        env[_VISIBLE_ENV[hw.device]] = ",".join(str(d) for d in ctx.visible_devices)
    env.update(recipe.launch.env)
    return env


def dump_yaml(args: dict[str, Any]) -> str:
    """One `key: value` line per argument, each value a JSON scalar that YAML reads the same way."""
    lines = ["# Rendered by zerodeck for `llamafactory-cli train`; one JSON value per key."]
    for key, value in args.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", key):
            raise BadInput(f"launch.options: {key!r} is not a LLaMA-Factory argument name")
        lines.append(f"{key}: {_scalar(key, value)}")
    return "\n".join(lines) + "\n"


def _scalar(key: str, value: Any) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise BadInput(f"launch.options: {key} = {value} is not a finite number")
        text = repr(value)
        if "e" in text and "." not in text.split("e")[0]:
            mantissa, exponent = text.split("e")
            text = f"{mantissa}.0e{exponent}"
        return text
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(", ", ": "))
    return json.dumps(value)


def _resolve(path: str, base: Path) -> Path:
    try:
        p = Path(path).expanduser()
    except RuntimeError:  # `~nosuchuser/...`: no such home; taken literally, as backends.resolve does
        p = Path(path)
    return p if p.is_absolute() else (base / p).resolve()


def _output_dir(recipe: Recipe, ctx: RenderContext) -> Path:
    out = recipe.launch.output_dir
    return _resolve(out, ctx.recipe_dir) if out else ctx.run_dir / "output"


def _data_args(recipe: Recipe, ctx: RenderContext, files: dict[str, str]) -> dict[str, Any]:
    data = recipe.data
    args: dict[str, Any] = {}
    if data.dataset:
        args["dataset"] = data.dataset
        # LLaMA-Factory's default is ./data; here it is relative to the recipe, not the run directory.
        args["dataset_dir"] = str(_resolve(data.dataset_dir or "data", ctx.recipe_dir))
    elif data.path:
        entry: dict[str, Any] = {"file_name": str(_resolve(data.path, ctx.recipe_dir))}
        if data.format == "text":
            entry["columns"] = {"prompt": "text"}
        else:
            entry["formatting"] = data.format
        files[DATASET_INFO_NAME] = json.dumps({DATASET_NAME: entry}, indent=2) + "\n"
        args["dataset"] = DATASET_NAME
        args["dataset_dir"] = str(ctx.run_dir)
    else:
        raise BadInput("data: the llamafactory backend needs `dataset` (a dataset_info.json name) or `path`")
    args["template"] = data.template or _default_template(recipe.model)
    if data.samples:
        args["max_samples"] = data.samples
    return args


def _default_template(model: ModelSpec) -> str:
    return "qwen" if (model.name or "").lower().removeprefix("qwen/").startswith("qwen") else "default"


def extensions_dir(cli: Path) -> Path:
    """A DeepSpeed JIT-op cache (deepspeed_shm_comm on CPU) for the CLI's environment, not zerodeck's.

    The default cache is shared by every environment, and an op built by another environment there
    breaks or rebuilds this one; the CLI's environment often differs from the one zerodeck runs in.
    """
    root = cli.parent.parent
    py = next((d.name for d in sorted(root.glob("lib/python3*"))), "python")
    py_tag = py.replace("thon", "").replace(".", "")
    # torch and DeepSpeed live under the environment's root, so the root keys their paths too.
    return ops_cache_dir(python=py_tag, torch=dist_text(root, "torch"), deepspeed=dist_text(root, "deepspeed"),
                         install_paths=[root])


def dist_text(env_root: Path, dist: str) -> str:
    """The version of `dist` installed in the environment at `env_root`, from its dist-info name."""
    for info in sorted(env_root.glob(f"lib/python3*/site-packages/{dist}-*.dist-info")):
        return info.name[len(dist) + 1 : -len(".dist-info")]
    return "unknown"


def cli_environment(cli: Path) -> dict[str, str | None]:
    """The CLI's path and the versions of the packages a LLaMA-Factory run depends on, where readable."""
    root = cli.parent.parent
    out: dict[str, str | None] = {"cli": str(cli)}
    for dist in ENV_PACKAGES:
        text = dist_text(root, dist)
        out[dist] = None if text == "unknown" else text
    return out


def _dist_version(env_root: Path, dist: str) -> tuple[int, ...] | None:
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", dist_text(env_root, dist))
    return tuple(int(g) for g in m.groups() if g is not None) if m else None


# The first DeepSpeed release whose coalesced ZeRO-3 all-gather waits for every gloo handle.
GLOO_GATHER_FIXED = (0, 19, 8)


def _refuse_known_crash(recipe: Recipe, cli: Path) -> None:
    env_root = cli.parent.parent
    if recipe.zero.stage == 3 and recipe.hardware.device == "cpu":
        ds = _dist_version(env_root, "deepspeed")
        if ds and ds < GLOO_GATHER_FIXED:
            raise RenderError(
                f"deepspeed {'.'.join(map(str, ds))} in {env_root}: ZeRO-3 on CPU (gloo) can read gathered weights "
                "before they arrive (NaN losses, runs that exit 0 on garbage); use deepspeed >= 0.19.8 there"
            )
    if recipe.method.kind != "lora" or recipe.zero.stage == 0:
        return
    tf, torch = _dist_version(env_root, "transformers"), _dist_version(env_root, "torch")
    if tf and torch and tf[:2] == (4, 57) and torch >= (2, 10):
        raise RenderError(
            f"transformers 4.57 with torch {torch[0]}.{torch[1]} in {env_root}: LoRA + DeepSpeed crashes at the "
            "first scheduler step (zip() ValueError); use transformers >= 5 there"
        )
