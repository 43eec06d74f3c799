"""The local files a recipe names, and whether each is there and readable, before anything starts.

A missing data file used to pass `recipes validate` and `plan` and fail a minute into the job with a
traceback in its log. `recipes validate`, `plan`, `run` (through the loader, with the line of each
field) and the launch preflight (for a file that went away since) all ask this one module.

Relative paths resolve against the recipe file's directory, as the launch backends resolve them
(`core/launch/backends.py: resolve`). Names that are not paths are not files: a registry model name,
a LLaMA-Factory `dataset` name (looked up in its dataset_info.json by LLaMA-Factory itself).
`model.path` is checked by the loader for its config.json.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from zerodeck.core.recipe.model import Recipe

Kind = Literal["file", "dir", "file_or_dir"]


@dataclass(frozen=True)
class NamedPath:
    loc: tuple[str, ...]  # where the recipe names it: ("data", "path")
    text: str  # as written in the recipe
    kind: Kind

    @property
    def field(self) -> str:
        return ".".join(self.loc)


def named_paths(recipe: Recipe) -> list[NamedPath]:
    """Every local path the recipe names that must exist before a launch."""
    out: list[NamedPath] = []
    if recipe.data.path:
        # The builtin trainer reads one JSONL file; LLaMA-Factory also takes a folder of files.
        kind: Kind = "file" if recipe.launch.backend == "builtin" else "file_or_dir"
        out.append(NamedPath(("data", "path"), recipe.data.path, kind))
    if recipe.data.dataset_dir:
        out.append(NamedPath(("data", "dataset_dir"), recipe.data.dataset_dir, "dir"))
    if recipe.launch.backend in ("deepspeed", "torchrun") and recipe.launch.script:
        out.append(NamedPath(("launch", "script"), recipe.launch.script, "file"))
    if recipe.launch.workdir:
        out.append(NamedPath(("launch", "workdir"), recipe.launch.workdir, "dir"))
    ds = recipe.launch.options.get("deepspeed")
    if isinstance(ds, str) and ds.strip() and not ds.lstrip().startswith("{"):
        # LLaMA-Factory's `deepspeed` option: a DeepSpeed config file (inline JSON is no file).
        out.append(NamedPath(("launch", "options", "deepspeed"), ds, "file"))
    return out


def resolve(text: str, base: Path | None) -> Path | None:
    """The path as the launcher will open it; None for a relative path with no recipe file to anchor it."""
    try:
        p = Path(text).expanduser()
    except RuntimeError:  # `~nosuchuser/...`: taken literally, as the launcher does
        p = Path(text)
    if p.is_absolute():
        return p
    return None if base is None else base / p


def problem(named: NamedPath, path: Path) -> str | None:
    """Why the launcher could not use `path`, or None."""
    try:
        is_file, is_dir = path.is_file(), path.is_dir()
    except OSError as exc:  # e.g. a name too long for the filesystem
        return f"{path}: {exc.strerror or exc}"
    if named.kind == "file" and is_dir:
        return f"{path}: is a directory, not a file"
    if named.kind == "dir" and is_file:
        return f"{path}: is a file, not a directory"
    if not (is_file or is_dir):
        what = {"file": "file", "dir": "directory", "file_or_dir": "file or directory"}[named.kind]
        return f"{path}: no such {what}"
    if not os.access(path, os.R_OK | (os.X_OK if is_dir else 0)):
        return f"{path}: not readable (permission denied)"
    return None


def file_problems(recipe: Recipe, base: Path | None) -> list[tuple[NamedPath, str]]:
    """Each named local path that is missing or unreadable, with the reason."""
    out = []
    for named in named_paths(recipe):
        path = resolve(named.text, base)
        if path is None:
            continue
        why = problem(named, path)
        if why:
            out.append((named, why))
    return out
