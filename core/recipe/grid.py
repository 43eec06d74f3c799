"""Expanding a recipe's `[grid]` table into the cartesian product of its axes.

Each member gets a stable, readable name built from what distinguishes it
(`qwen2.5-32b-lora-z3-s80k`), so the same grid always yields the same names and runs of one grid
line up in comparisons.

A derived name can carry whatever an axis value holds (a `data.path` axis gives `path../other/d`),
so a name that breaks the recipe name rule (NAME_RE) is sanitised rather than refused: grids over
paths are legitimate, and the user cannot choose member names to fix them. The sanitised name keeps
the readable characters and adds a hash of the raw name, so it stays stable and distinct.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from typing import Any

from pydantic import BaseModel, ValidationError
from zerodeck.core.recipe.model import NAME_RE, Recipe

# Axis -> short prefix used in derived names when the axis is not part of the canonical stem.
_SHORT = {
    "method.rank": "r",
    "train.micro_batch": "mb",
    "train.seq_len": "seq",
    "train.grad_accum": "ga",
    "train.lr": "lr",
    "train.precision": "",
    "train.attn": "",
    "hardware.cards": "x",
    "hardware.device": "",
    "hardware.card_gb": "g",
    "cluster.nodes": "n",
}


def _field_exists(key: str) -> bool:
    model: type[BaseModel] = Recipe
    parts = key.split(".")
    for i, part in enumerate(parts):
        fields = model.model_fields
        if part not in fields or (i == 0 and part in ("grid", "name")):
            return False
        ann = fields[part].annotation
        if i < len(parts) - 1:
            if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
                return False
            model = ann
    return True


class GridError(ValueError):
    """A grid point that does not validate; `axis` names the offending key when known."""

    def __init__(self, axis: str | None, message: str) -> None:
        super().__init__(message)
        self.axis = axis


def grid_problems(recipe: Recipe) -> list[tuple[str, str]]:
    problems = []
    for key, values in recipe.grid.items():
        if not _field_exists(key):
            problems.append((key, "names no recipe field"))
        elif not values:
            problems.append((key, "an axis needs at least one value"))
    return problems


def _set(data: dict[str, Any], key: str, value: Any) -> None:
    *head, last = key.split(".")
    node = data
    for part in head:
        node = node.setdefault(part, {})
    node[last] = value


def _samples_label(n: int | None) -> str | None:
    if n is None:
        return None
    if n >= 1000 and n % 1000 == 0:
        return f"s{n // 1000}k"
    return f"s{n}"


def derived_name(recipe: Recipe, axes: dict[str, Any]) -> str:
    parts = [recipe.model.label.lower(), recipe.method.kind]
    if recipe.method.kind == "lora" and "method.rank" in axes:
        parts[-1] += f"{recipe.method.rank}"
    parts.append(f"z{recipe.zero.stage}")
    if recipe.zero.offload != "none":
        parts.append(f"off-{'opt' if recipe.zero.offload == 'optimizer' else 'all'}")
    samples = _samples_label(recipe.data.samples)
    if samples:
        parts.append(samples)
    for key, value in axes.items():
        if key in ("model.name", "model.path", "method.kind", "method.rank", "zero.stage",
                   "zero.offload", "data.samples"):
            continue
        prefix = _SHORT.get(key, key.rsplit(".", 1)[-1].replace("_", ""))
        parts.append(f"{prefix}{value}")
    return "-".join(str(p) for p in parts).replace(" ", "")


MAX_NAME = 120  # a member name becomes a file name (`expand --out`): stay far below NAME_MAX


def safe_name(name: str) -> str:
    """`name` if it obeys the name rule, else its allowed characters plus a stable hash of it."""
    if NAME_RE.match(name) and len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    kept = re.sub(r"[^A-Za-z0-9._+-]+", "_", name).lstrip("._+-")[:MAX_NAME - 11].rstrip("._+-")
    return f"{kept}-{digest}" if kept else f"member-{digest}"


def expand(recipe: Recipe) -> list[Recipe]:
    """The grid's members (a recipe without a grid expands to itself)."""
    if not recipe.grid:
        return [recipe]
    keys = list(recipe.grid)
    base = recipe.model_dump(mode="python")
    base.pop("grid")
    members: list[Recipe] = []
    seen: set[str] = set()
    for combo in itertools.product(*(recipe.grid[k] for k in keys)):
        data = _deepcopy(base)
        axes = dict(zip(keys, combo))
        for key, value in axes.items():
            _set(data, key, value)
        try:
            member = Recipe.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            axis = next((k for k in keys if loc == k or loc.startswith(k + ".")), None)
            raise GridError(axis, f"{first['msg']} (got {axes.get(axis or '', '?')!r})") from None
        name = safe_name(derived_name(member, axes))
        if name in seen:
            name = f"{name}-{len(members)}"
        seen.add(name)
        tags = list(dict.fromkeys([*member.tags, f"grid:{recipe.name}"]))
        members.append(member.model_copy(update={"name": name, "tags": tags}))
    return members


def _deepcopy(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _deepcopy(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_deepcopy(x) for x in v]
    return v
