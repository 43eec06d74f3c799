"""The `deepspeed`, `torchrun` and `command` backends: the user's script or argv, launched.

The DeepSpeed config is rendered for all three (the script may pass `--deepspeed {ds_config}`),
with numbers instead of "auto". Launchers are named by bare name and looked up on PATH by the
supervisor, so a missing `deepspeed` becomes a recorded failure with that reason.
"""

from __future__ import annotations

from zerodeck.core.launch.backends import RenderError, resolve
from zerodeck.core.launch.context import Launch, RenderContext
from zerodeck.core.launch.ds_config import dumps, render_ds_config
from zerodeck.core.launch.environment import job_env
from zerodeck.core.recipe.model import Recipe
from zerodeck.core.recipe.placeholders import PlaceholderError
from zerodeck.core.recipe.placeholders import fill as placeholders_fill

DS_CONFIG = "ds_config.json"


def placeholders(recipe: Recipe, ctx: RenderContext) -> dict[str, str]:
    out_dir = resolve(recipe.launch.output_dir, ctx.recipe_dir) if recipe.launch.output_dir else ctx.run_dir / "output"
    return {  # the keys are PLACEHOLDERS (tests hold them equal)
        "ds_config": str(ctx.run_dir / DS_CONFIG),
        "run_dir": str(ctx.run_dir),
        "output_dir": str(out_dir),
        "master_port": str(ctx.master_port),
        "nproc": str(recipe.hardware.cards),
        "python": ctx.python,
        "recipe_dir": str(ctx.recipe_dir),
        "run_id": str(ctx.run_id),
        "visible_devices": ",".join(str(d) for d in ctx.visible_devices),
    }


def fill(args: list[str], values: dict[str, str], field: str) -> list[str]:
    out = []
    for i, a in enumerate(args):
        try:
            out.append(placeholders_fill(a, values))
        except PlaceholderError as exc:
            raise RenderError(f"{field}[{i}]: {exc}") from None
    return out


def _script(recipe: Recipe, ctx: RenderContext) -> str:
    return str(resolve(recipe.launch.script or "", ctx.recipe_dir))


def _workdir(recipe: Recipe, ctx: RenderContext):  # noqa: ANN202
    return resolve(recipe.launch.workdir, ctx.recipe_dir) if recipe.launch.workdir else ctx.recipe_dir


def render_deepspeed(recipe: Recipe, ctx: RenderContext) -> Launch:
    values = placeholders(recipe, ctx)
    argv = ["deepspeed"]
    if recipe.hardware.device != "cpu" and recipe.hardware.devices is not None:
        argv += ["--include", "localhost:" + ",".join(str(d) for d in ctx.visible_devices)]
    else:
        argv += ["--num_gpus", str(recipe.hardware.cards)]
    argv += ["--master_port", str(ctx.master_port), _script(recipe, ctx)]
    argv += fill(recipe.launch.args, values, "launch.args")
    env = job_env(recipe, ctx)
    if "--include" in argv:
        # DeepSpeed's runner sets the visibility from --include itself; a second mask would renumber.
        for var in ("CUDA_VISIBLE_DEVICES", "ASCEND_RT_VISIBLE_DEVICES"):
            env.pop(var, None)
    return Launch("deepspeed", argv, env, {DS_CONFIG: dumps(render_ds_config(recipe))},
                  cwd=_workdir(recipe, ctx), ranks=recipe.hardware.cards)


def render_torchrun(recipe: Recipe, ctx: RenderContext) -> Launch:
    values = placeholders(recipe, ctx)
    argv = ["torchrun", "--nnodes", "1", "--nproc_per_node", str(recipe.hardware.cards),
            "--master_addr", "127.0.0.1", "--master_port", str(ctx.master_port), _script(recipe, ctx)]
    argv += fill(recipe.launch.args, values, "launch.args")
    return Launch("torchrun", argv, job_env(recipe, ctx), {DS_CONFIG: dumps(render_ds_config(recipe))},
                  cwd=_workdir(recipe, ctx), ranks=recipe.hardware.cards)


def render_command(recipe: Recipe, ctx: RenderContext) -> Launch:
    argv = fill(list(recipe.launch.argv or []), placeholders(recipe, ctx), "launch.argv")
    return Launch("command", argv, job_env(recipe, ctx), {DS_CONFIG: dumps(render_ds_config(recipe))},
                  cwd=_workdir(recipe, ctx), ranks=recipe.hardware.cards)
