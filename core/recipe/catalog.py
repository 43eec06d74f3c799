"""The catalog: every recipe file zerodeck can see, good or bad, with grids expanded.

Sources, in order: the catalog shipped in the package, the user's `$ZERODECK_HOME/recipes`, and the
directories in `ZERODECK_RECIPES` (os.pathsep-separated) or given on the command line. A bad file
never hides the good ones: it is listed with its problems.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zerodeck.core import paths
from zerodeck.core.errors import BadInput
from zerodeck.core.i18n import _
from zerodeck.core.recipe.grid import expand
from zerodeck.core.recipe.load import Problem, RecipeError, load_recipe_file
from zerodeck.core.recipe.model import Recipe


@dataclass
class CatalogEntry:
    path: Path
    recipe: Recipe | None = None
    members: list[Recipe] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.recipe is not None and not self.problems

    @property
    def grid_name(self) -> str | None:
        return self.recipe.name if self.recipe is not None and self.recipe.is_grid else None


def default_dirs() -> list[Path]:
    dirs = [paths.shipped_recipes_dir(), paths.user_recipes_dir()]
    extra = os.environ.get("ZERODECK_RECIPES", "")
    dirs += [Path(p).expanduser() for p in extra.split(os.pathsep) if p]
    return dirs


def recipe_files(target: Path) -> tuple[list[Path], list[Problem]]:
    """TOML files under a directory (sorted), or the file itself."""
    if target.is_file():
        return [target], []
    if not target.exists():
        return [], []
    try:
        return sorted(p for p in target.rglob("*.toml") if p.is_file()), []
    except OSError as exc:
        return [], [Problem(str(target), 0, "directory", f"cannot read: {exc.strerror or exc}")]


def load_entry(path: Path) -> CatalogEntry:
    entry = CatalogEntry(path=path)
    try:
        entry.recipe = load_recipe_file(path)
        entry.members = expand(entry.recipe)
    except RecipeError as exc:
        entry.problems = exc.problems
    return entry


def load_catalog(dirs: list[Path] | None = None) -> list[CatalogEntry]:
    entries: list[CatalogEntry] = []
    seen: set[Path] = set()
    for d in dirs if dirs is not None else default_dirs():
        if d.exists() and not os.access(d, os.R_OK | os.X_OK if d.is_dir() else os.R_OK):
            entries.append(CatalogEntry(path=d, problems=[Problem(str(d), 0, "directory", "permission denied")]))
            continue
        files, problems = recipe_files(d)
        if problems:
            entries.append(CatalogEntry(path=d, problems=problems))
        for f in files:
            key = f.resolve()
            if key in seen:
                continue
            seen.add(key)
            entries.append(load_entry(f))
    return entries


def find_recipe(ref: str, dirs: list[Path] | None = None) -> tuple[Recipe, Path]:
    """A recipe by file path, or by name (a plain recipe or a grid member) in the catalog."""
    p = Path(ref).expanduser()
    if p.suffix == ".toml" or p.exists():
        recipe = load_recipe_file(p)
        members = expand(recipe)
        if len(members) != 1:

            names = ", ".join(m.name for m in members[:4])
            raise BadInput(_("{path}: a grid of {n} recipes; name one ({names}, ...) or expand it with "
                             "`zerodeck recipes expand`").format(path=p, n=len(members), names=names))
        return members[0], p
    for entry in load_catalog(dirs):
        for member in entry.members:
            if member.name == ref:
                return member, entry.path

    raise BadInput(_("{ref}: no such recipe file or catalog name (see `zerodeck recipes list`)").format(ref=ref))


def catalog_rows(entries: list[Any]) -> list[dict[str, Any]]:
    """One row per recipe (grid members expanded), as `zerodeck recipes list --json` prints them."""
    rows = []
    for entry in entries:
        for member in entry.members:
            rows.append({**member.summary(), "path": str(entry.path), "grid": entry.grid_name})
    return rows
