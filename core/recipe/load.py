"""Reading recipe TOML files into Recipes, with every problem located as `PATH:LINE: field: message`.

tomllib gives no positions for keys, so `_KeyLines` re-scans the text for table headers and keys;
it is only used to point at the line of a problem, never to read values.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w
import tomllib
from pydantic import ValidationError
from zerodeck.core.errors import BadInput
from zerodeck.core.plan.registry import UnknownModel, lookup
from zerodeck.core.recipe.files import file_problems
from zerodeck.core.recipe.grid import GridError, expand, grid_problems
from zerodeck.core.recipe.model import AlertsSpec, ClusterSpec, Recipe, WatchSpec
from zerodeck.core.recipe.placeholders import template_problems
from zerodeck.core.recipe.quant import QUANT_AXES, quant_problems


@dataclass(frozen=True)
class Problem:
    path: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.field}: {self.message}"


class RecipeError(BadInput):
    """One or more problems in recipe files; each becomes its own line."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__(str(problems[0]) if problems else "bad recipe", lines=[str(p) for p in problems])


_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_.\- "']+?)\s*=""")


def _split_key(raw: str) -> list[str]:
    parts = re.findall(r'"([^"]*)"|\'([^\']*)\'|([^.\s]+)', raw)
    return [a or b or c for a, b, c in parts]


class _KeyLines:
    """Maps dotted key paths to the line that defines them (1-based)."""

    def __init__(self, text: str) -> None:
        self.lines: dict[tuple[str, ...], int] = {}
        self.text = text.splitlines()
        table: tuple[str, ...] = ()
        for no, line in enumerate(self.text, 1):
            header = _HEADER.match(line)
            if header:
                table = tuple(_split_key(header.group(1)))
                self.lines.setdefault(table, no)
                continue
            key = _KEY.match(line)
            if key:
                full = table + tuple(_split_key(key.group(1)))
                self.lines.setdefault(full, no)

    def find(self, loc: tuple[str | int, ...]) -> int:
        parts = tuple(str(p) for p in loc)
        while parts:
            if parts in self.lines:
                return self.lines[parts]
            # a grid key such as "model.name" is one quoted key inside [grid]
            if len(parts) >= 2 and (parts[0], ".".join(parts[1:])) in self.lines:
                return self.lines[(parts[0], ".".join(parts[1:]))]
            parts = parts[:-1]
        return 1

    def find_value(self, loc: tuple[str | int, ...], value: str) -> int:
        """The line holding `value` at or after the line of `loc` (a multi-line array), else that line."""
        start = self.find(loc)
        if value and "\n" not in value:
            for no in range(start, len(self.text) + 1):
                if value in self.text[no - 1]:
                    return no
                if no > start and _HEADER.match(self.text[no - 1]):
                    break
        return start


def field_name(loc: tuple[str | int, ...]) -> str:
    """`launch.argv[1]`: list positions as indexes, the way the user would point at them."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "recipe"


def _pydantic_problems(path: str, exc: ValidationError, lines: _KeyLines) -> list[Problem]:
    problems = []
    for e in exc.errors():
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        # pydantic adds the union branch name ("str", "list[str]") to the location; drop it
        loc = tuple(p for p in loc if p not in ("str", "list[str]", "int", "float"))
        if loc and loc[-1] == "[key]":
            loc = loc[:-2]  # a bad dict key: the message names it; point at the table
        field = field_name(loc)
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif e["type"] == "missing":
            msg = "required"
        elif "input" in e and e["type"] not in ("value_error",) and not isinstance(e["input"], dict):
            msg = f"{msg} (got {e['input']!r})"
        line = lines.find_value(loc, e["input"]) if isinstance(e.get("input"), str) else lines.find(loc)
        problems.append(Problem(path, line, field, msg))
    return problems


def parse_toml(text: str, path: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        line = int(m.group(1)) if m else 1
        raise RecipeError([Problem(path, line, "toml", str(exc).split(" (at line")[0])]) from None


def load_recipe(data: dict[str, Any], path: str, text: str = "", base_dir: Path | None = None) -> Recipe:
    """Validate parsed TOML; also check what only the filesystem and the registry can tell."""
    lines = _KeyLines(text)
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        raise RecipeError(_pydantic_problems(path, exc, lines)) from None
    problems = _check_references(recipe, path, lines, base_dir)
    if problems:
        raise RecipeError(problems)
    return recipe


def _check_references(recipe: Recipe, path: str, lines: _KeyLines, base_dir: Path | None) -> list[Problem]:

    problems: list[Problem] = []
    for field, i, text, msg in template_problems(recipe.launch.backend, recipe.launch.argv, recipe.launch.args):
        problems.append(Problem(path, lines.find_value(("launch", field), text), f"launch.{field}[{i}]", msg))
    for field, msg in quant_problems(recipe):
        problems.append(Problem(path, lines.find(tuple(field.split("."))), field, msg))
    if recipe.model.name and not recipe.model.path:
        try:
            lookup(recipe.model.name)
        except UnknownModel as exc:
            problems.append(Problem(path, lines.find(("model", "name")), "model.name", str(exc)))
    if recipe.model.path:
        mp = _expand_user(recipe.model.path)
        if not mp.is_absolute() and base_dir is not None:
            mp = base_dir / mp
        if not (mp / "config.json").is_file():
            problems.append(
                Problem(path, lines.find(("model", "path")), "model.path", f"{mp}: no config.json there")
            )

    grid_errs = grid_problems(recipe)
    problems += [Problem(path, lines.find(("grid", key)), f"grid.{key}", msg) for key, msg in grid_errs]
    if recipe.grid and not grid_errs:
        try:
            members = expand(recipe)
        except GridError as exc:
            field = f"grid.{exc.axis}" if exc.axis else "grid"
            problems.append(Problem(path, lines.find(("grid", exc.axis or "")), field, str(exc)))
        else:
            problems += _member_template_problems(recipe, members, path, lines)
            problems += _member_quant_problems(recipe, members, path, lines)
            for member in members:
                if member.model.name and not member.model.path:
                    try:
                        lookup(member.model.name)
                    except UnknownModel as exc:
                        line = lines.find(("grid", "model.name"))
                        problems.append(Problem(path, line, "grid.model.name", str(exc)))
                        break
    return problems


def _member_template_problems(recipe: Recipe, members: list[Recipe], path: str, lines: _KeyLines) -> list[Problem]:
    """Placeholders a grid axis brings in (`launch.argv`, `launch.args` or `launch.backend` as an axis)."""
    if not any(key.startswith("launch.") for key in recipe.grid):
        return []
    problems = []
    for member in members:
        launch = member.launch
        for field, i, _text, msg in template_problems(launch.backend, launch.argv, launch.args):
            axis = f"launch.{field}" if f"launch.{field}" in recipe.grid else "launch.backend"
            problems.append(Problem(path, lines.find(("grid", axis)), f"grid.{axis}",
                                    f"member {member.name}: launch.{field}[{i}]: {msg}"))
    return problems


def _member_quant_problems(recipe: Recipe, members: list[Recipe], path: str, lines: _KeyLines) -> list[Problem]:
    """Quantisation a grid axis makes impossible (`hardware.device` or `method.quant_bits` as an axis)."""
    if recipe.grid and quant_problems(recipe):
        return []  # already reported once for the recipe itself
    for member in members:
        for field, msg in quant_problems(member):
            axis = next((key for key in recipe.grid if key in QUANT_AXES), field)
            return [Problem(path, lines.find(("grid", axis)), f"grid.{axis}", f"member {member.name}: {field}: {msg}")]
    return []


def file_problem_lines(recipe: Recipe, path: str, lines: _KeyLines, base_dir: Path | None) -> list[Problem]:
    """The local files the recipe names that are missing or unreadable, each at its line."""
    return [Problem(path, lines.find_value(named.loc, named.text), named.field, why)
            for named, why in file_problems(recipe, base_dir)]


def _member_file_problems(recipe: Recipe, members: list[Recipe], path: str, lines: _KeyLines,
                          base_dir: Path | None) -> list[Problem]:
    """A grid's files: a path the grid varies is reported per member at its axis, any other once."""
    problems: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for member in members:
        for named, why in file_problems(member, base_dir):
            if (named.field, why) in seen:
                continue
            seen.add((named.field, why))
            if named.field in recipe.grid:
                problems.append(Problem(path, lines.find(("grid", named.field)), f"grid.{named.field}",
                                        f"member {member.name}: {why}"))
            else:
                problems.append(Problem(path, lines.find_value(named.loc, named.text), named.field, why))
    return problems


def recipe_file_problems(recipe: Recipe, recipe_path: Path | None, base_dir: Path | None) -> list[Problem]:
    """The local files a loaded recipe names (every member's, for a grid) that are missing or
    unreadable, each at its line in the recipe file when that can still be read.

    Not part of loading: expanding a grid or showing a recipe must work before its data exists.
    `recipes validate`, `plan`, `run` and the launch preflight ask for it.
    """
    text = ""
    if recipe_path is not None:
        try:
            text = recipe_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            text = ""
    label = str(recipe_path) if recipe_path is not None else recipe.name
    lines = _KeyLines(text)
    if recipe.grid:

        return _member_file_problems(recipe, expand(recipe), label, lines, base_dir)
    return file_problem_lines(recipe, label, lines, base_dir)


def check_recipe_files(recipe: Recipe, recipe_path: Path) -> None:
    """RecipeError (exit 2, one `PATH:LINE: field: message` per problem) when a named file is missing."""
    problems = recipe_file_problems(recipe, recipe_path, recipe_path.parent)
    if problems:
        raise RecipeError(problems)


def _expand_user(path: str) -> Path:
    # `~nosuchuser/x` makes expanduser raise RuntimeError; such a path is then taken literally.
    try:
        return Path(path).expanduser()
    except RuntimeError:
        return Path(path)


def load_recipe_file(path: str | Path) -> Recipe:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise RecipeError([Problem(str(p), 0, "file", f"cannot read: {reason}")]) from None
    return load_recipe(parse_toml(text, str(p)), str(p), text, p.parent)


def to_dict(recipe: Recipe) -> dict[str, Any]:
    """Plain data with the Nones dropped (TOML has no null)."""

    def clean(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items() if x is not None and x != {} or k == "env"}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    data = clean(recipe.model_dump(mode="python"))
    for key in ("grid", "tags"):
        if not data.get(key):
            data.pop(key, None)
    return data


def to_toml(recipe: Recipe) -> str:
    return tomli_w.dumps(to_dict(recipe))


LATER_KEYS = (("model", "quantization"), ("method", "quant_bits"))
# Keys and whole tables added later are left out while at their defaults, for the same reason.
LATER_DEFAULTS: tuple[tuple[str, str, Any], ...] = (("launch", "resume", False),)
LATER_SECTIONS: dict[str, dict[str, Any]] = {
    "watch": WatchSpec().model_dump(mode="json"), "alerts": AlertsSpec().model_dump(mode="json"),
    "cluster": ClusterSpec().model_dump(mode="json"),
}


def content_hash(recipe: Recipe) -> str:
    """Stable across key order and formatting: the snapshot id a run points at."""
    data = recipe.model_dump(mode="json")
    # Keys added later are left out while unset, so a recipe keeps the id it had before they existed.
    for section, key in LATER_KEYS:
        if data.get(section, {}).get(key) is None:
            data[section].pop(key, None)
    for section, key, default in LATER_DEFAULTS:
        if data.get(section, {}).get(key) == default:
            data[section].pop(key, None)
    for section in LATER_SECTIONS:
        if data.get(section) == LATER_SECTIONS[section]:
            data.pop(section, None)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
