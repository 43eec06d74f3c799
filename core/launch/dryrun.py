"""`zerodeck run --dry-run`: what a recipe would launch, rendered by the same backend as a real run,
with nothing started, recorded or written.

The run directory a real run would get is not known without recording the run (its id names it),
so paths inside it are shown under `<runs>/dry-run`; everything else (argv, the environment zerodeck
adds, the rendered files, the launch preflight) is exactly what `start_run` would use. Secrets are
masked wherever they can appear: environment values by their variable's name (as `show` does),
argv values after a flag so named, and `key: value` lines of rendered files.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path
from typing import Any

from zerodeck.core import paths
from zerodeck.core.launch import preflight
from zerodeck.core.launch.backends import render
from zerodeck.core.launch.context import RenderContext
from zerodeck.core.launch.environment import MASK, mask_env
from zerodeck.core.launch.ports import pick_port
from zerodeck.core.recipe.model import Recipe

DRY_RUN_DIR = "dry-run"
# A secret argument or file key is a whole word of its name (`hub_token`, `api-key`), so `max_new_tokens`
# or `tokenizer` stay readable.
SECRET_NAME = re.compile(r"(?:^|[_.-])(?:token|key|secret|password|passwd|credential)(?:$|[_.-])", re.IGNORECASE)
_SECRET_LINE = re.compile(r"^(\s*[\"']?([A-Za-z0-9_.-]+)[\"']?\s*[:=]\s*)(.+)$")


def dry_run(recipe: Recipe, path: Path | None) -> dict[str, Any]:
    """One recipe's launch as `run --dry-run --json` prints it. BadInput when it cannot be rendered."""
    run_dir = paths.runs_dir() / DRY_RUN_DIR
    fixed = recipe.launch.options.get("master_port")
    port = int(fixed) if isinstance(fixed, int) else pick_port()
    devices = recipe.hardware.devices or list(range(recipe.hardware.cards))
    recipe_dir = path.parent.resolve() if path else Path.cwd()
    ctx = RenderContext(0, run_dir, recipe_dir, port, devices, sys.executable)
    launch = render(recipe, ctx)
    # The run directory would exist by now in a real launch; the job's cwd inside it is not a problem.
    checked = dataclasses.replace(launch, cwd=None) if launch.cwd == run_dir else launch
    if recipe.cluster.scheduler == "slurm":  # the sbatch and node scripts a real launch would submit
        from zerodeck.core.launch.slurm.render import wrap

        launch = wrap(recipe, launch, ctx, cache=paths.home() / "slurm" / "queue.json")
    problem = preflight.check(recipe, checked, port, launch.env.get("PATH"), recipe_path=path, recipe_dir=recipe_dir)
    return {
        "name": recipe.name,
        "recipe_path": str(path) if path else None,
        "backend": launch.backend,
        "argv": mask_argv(launch.argv),
        "env": mask_env(launch.env),
        "cwd": str(launch.cwd) if launch.cwd else None,
        "ranks": launch.ranks,
        "run_dir": str(run_dir),
        "files": {name: mask_text(content) for name, content in launch.files.items()},
        "problem": problem,
    }


def mask_argv(argv: list[str]) -> list[str]:
    """`--hub_token X` and `--hub_token=X` show `***` for X."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next and not arg.startswith("--"):
            out.append(MASK)
            hide_next = False
            continue
        name, eq, _ = arg.partition("=")
        secret = arg.startswith("-") and SECRET_NAME.search(name.lstrip("-")) is not None
        out.append(f"{name}={MASK}" if secret and eq else arg)
        hide_next = secret and not eq
    return out


def mask_text(text: str) -> str:
    """A rendered file with the value of every `key: value` / `key = value` line whose key names a secret masked."""
    lines = []
    for line in text.split("\n"):
        m = _SECRET_LINE.match(line)
        lines.append(m.group(1) + MASK if m and SECRET_NAME.search(m.group(2)) else line)
    return "\n".join(lines)
