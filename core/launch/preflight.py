"""Checks made before a job starts, so a missing file, launcher, script or port becomes one clear line.

Each returns the reason as text (None when fine); the caller records the run as `failed` with it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from zerodeck.core.launch.context import Launch
from zerodeck.core.launch.ports import port_is_free
from zerodeck.core.recipe.load import recipe_file_problems
from zerodeck.core.recipe.model import Recipe

LAUNCHERS = {"deepspeed", "torchrun", "llamafactory-cli", "swift"}


def check(recipe: Recipe, launch: Launch, port: int, env_path: str | None, *,
          recipe_path: Path | None = None, recipe_dir: Path | None = None) -> str | None:
    # The loader checked the recipe's files, but a catalog the TUI loaded an hour ago or a queued
    # recipe may name a data file that has gone since; the job would fail a minute in with a traceback.
    files = recipe_file_problems(recipe, recipe_path, recipe_dir)
    if files:
        return str(files[0])
    path = env_path if env_path is not None else os.environ.get("PATH", "")
    exe = launch.argv[0] if launch.argv else ""
    if not exe:
        return "launch.argv: empty command"
    if os.sep not in exe and shutil.which(exe, path=path) is None:
        hint = " (activate the environment that has it, or set launch.env.PATH)" if exe in LAUNCHERS else ""
        return f"{exe}: not found on PATH{hint}"
    if os.sep in exe and not os.access(exe, os.X_OK):
        return f"{exe}: not an executable file"
    if recipe.launch.backend in ("deepspeed", "torchrun"):
        script = launch.argv[launch.argv.index("--master_port") + 2]
        if not Path(script).is_file():
            return f"launch.script: {script}: no such file"
    if launch.cwd is not None and not Path(launch.cwd).is_dir():
        return f"launch.workdir: {launch.cwd}: no such directory"
    if not port_is_free(port):
        return f"master port {port} is already in use"
    return None
