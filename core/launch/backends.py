"""Backend registry: a recipe's `launch.backend` name → the module that renders it.

Modules are imported only when their backend is used, so a backend with heavy or optional
dependencies (LLaMA-Factory's renderer) costs nothing to the others. Each module exposes
`render(recipe, ctx) -> Launch` (core/launch/context.py).
"""

from __future__ import annotations

import importlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from zerodeck.core.errors import BadInput
from zerodeck.core.launch.context import Launch, RenderContext
from zerodeck.core.recipe.model import Recipe

BACKENDS: dict[str, str] = {
    "builtin": "zerodeck.core.launch.builtin_render",
    "deepspeed": "zerodeck.core.launch.script_backends:render_deepspeed",
    "torchrun": "zerodeck.core.launch.script_backends:render_torchrun",
    "command": "zerodeck.core.launch.script_backends:render_command",
    "llamafactory": "zerodeck.core.launch.llamafactory",
    "swift": "zerodeck.core.launch.swift",
}


class RenderError(BadInput):
    """The recipe cannot be turned into a launch (an unknown placeholder, a missing module)."""


def renderer(name: str) -> Callable[[Recipe, RenderContext], Launch]:
    target = BACKENDS.get(name)
    if target is None:
        raise RenderError(f"launch.backend: unknown backend {name!r} (known: {', '.join(sorted(BACKENDS))})")
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise RenderError(f"launch.backend: backend {name!r} is not available in this install") from None
        raise
    fn: Callable[[Recipe, RenderContext], Launch] = getattr(module, attr or "render")
    return fn


def render(recipe: Recipe, ctx: RenderContext) -> Launch:
    return renderer(recipe.launch.backend)(recipe, ctx)


def resolve(path: str, base: Path) -> Path:
    try:
        p = Path(path).expanduser()
    except RuntimeError:  # `~nosuchuser/...`: no home to expand to; the path is taken literally
        p = Path(path)
    return p if p.is_absolute() else (base / p)


def find_cli(recipe: Recipe, program: str, env_var: str, install: str) -> Path:
    """The launcher executable a backend runs: launch.options["cli"], else $`env_var`, else `program`
    on PATH. `install` names what provides it, for the error."""
    explicit = recipe.launch.options.get("cli")
    source = "launch.options.cli"
    if not explicit:
        explicit, source = os.environ.get(env_var), env_var
    if explicit:
        path = resolve(str(explicit), Path())
        if path.is_file() and os.access(path, os.X_OK):
            return path.absolute()
        raise RenderError(f"{program} not found: {source} = {explicit} is not an executable file")
    found = shutil.which(program)
    if not found:
        raise RenderError(f"{program} not found on PATH; install {install} or set {env_var} or launch.options.cli")
    return Path(found).absolute()
