"""`zerodeck recipes list|validate|expand`: the catalog from the command line."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from zerodeck.core.cli.output import add_json_flag, emit, err, say
from zerodeck.core.errors import EXIT_OK, EXIT_USAGE, BadInput
from zerodeck.core.i18n import _

LIST_COLUMNS = ["name", "model", "method", "zero_stage", "offload", "cards", "device",
                "data_samples", "seq_len", "micro_batch", "launcher", "grid"]


def register(sub: Any) -> None:
    p = sub.add_parser("recipes", help=_("list, validate and expand recipe files"))
    p.set_defaults(group_parser=p)
    rs = p.add_subparsers(dest="recipes_command", metavar="SUBCOMMAND", parser_class=type(p))

    ls = rs.add_parser("list", help=_("every recipe in the catalog (grids expanded)"))
    ls.add_argument("--dir", action="append", type=Path, default=None,
                    help=_("read recipes from this directory instead of the default catalog (repeatable)"))
    add_json_flag(ls)
    ls.set_defaults(handler=cmd_list)

    va = rs.add_parser("validate", help=_("check recipe files; one line per problem as PATH:LINE: field: message"))
    va.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    add_json_flag(va)
    va.set_defaults(handler=cmd_validate)

    ex = rs.add_parser("expand", help=_("write or show the cartesian product of a grid's axes"))
    ex.add_argument("grid", type=Path, metavar="GRID.toml")
    ex.add_argument("--out", type=Path, help=_("write one TOML file per member into this directory"))
    add_json_flag(ex)
    ex.set_defaults(handler=cmd_expand)


def cmd_list(args: argparse.Namespace) -> int:
    from zerodeck.core.recipe.catalog import catalog_rows, load_catalog

    entries = load_catalog(args.dir)
    rows = catalog_rows(entries)
    bad = [p for e in entries for p in e.problems]
    emit(rows, as_json=args.json, columns=LIST_COLUMNS)
    for problem in bad:
        err(str(problem))
    return EXIT_USAGE if bad else EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    from zerodeck.core.recipe.catalog import load_entry, recipe_files
    from zerodeck.core.recipe.load import recipe_file_problems

    results = []
    problems = []
    for target in args.paths:
        if not target.exists():
            problems.append(f"{target}:0: file: no such file or directory")
            results.append({"path": str(target), "ok": False, "problems": [problems[-1]]})
            continue
        files, dir_problems = recipe_files(target)
        problems += [str(p) for p in dir_problems]
        for f in files:
            entry = load_entry(f)
            lines = [str(p) for p in entry.problems]
            if entry.recipe is not None:
                # Every local file it names must be there before a launch, not a minute into the job.
                lines += [str(p) for p in recipe_file_problems(entry.recipe, f, f.parent)]
            problems += lines
            results.append({"path": str(f), "ok": not lines, "recipes": len(entry.members), "problems": lines})
    if args.json:
        emit(results, as_json=True)
    else:
        for line in problems:
            say(line)
        good = sum(1 for r in results if r["ok"])
        if problems:
            err(_("{good} of {n} file(s) valid").format(good=good, n=len(results)))
        else:
            print(_("{good} file(s) valid").format(good=good))
    return EXIT_USAGE if problems else EXIT_OK


def cmd_expand(args: argparse.Namespace) -> int:
    from zerodeck.core.recipe.grid import expand
    from zerodeck.core.recipe.load import load_recipe_file, to_toml

    recipe = load_recipe_file(args.grid)
    members = expand(recipe)
    rows = []
    if args.out:
        try:
            args.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BadInput(_("{path}: cannot create directory: {reason}")
                           .format(path=args.out, reason=exc.strerror)) from None
    # every target is checked before the first is written, so a refusal leaves DIR untouched
    targets = [_inside(args.out, f"{m.name}.toml") for m in members] if args.out else []
    for i, member in enumerate(members):
        row: dict[str, Any] = member.summary()
        if args.out:
            target = targets[i]
            try:
                target.write_text(to_toml(_rebase(member, args.grid.parent, args.out)), encoding="utf-8")
            except OSError as exc:
                raise BadInput(_("{path}: cannot write: {reason}")
                               .format(path=target, reason=exc.strerror or exc)) from None
            row["path"] = str(target)
        rows.append(row)
    emit(rows, as_json=args.json, columns=[*LIST_COLUMNS[:-1], *(["path"] if args.out else [])])
    return EXIT_OK


def _inside(directory: Path, file_name: str) -> Path:
    """directory/file_name, refused when it would land elsewhere (`..`, a separator, a symlink out)."""
    root = directory.resolve()
    target = (root / file_name).resolve()
    if target.parent != root:
        raise BadInput(_("{path}: refused: it would be written outside {directory}")
                       .format(path=directory / file_name, directory=directory))
    return directory / file_name


def _rebase(recipe: Any, src: Path, dst: Path) -> Any:
    """Relative data/model paths are relative to the recipe file: keep them pointing at the same place."""
    import os

    def fix(p: str | None) -> str | None:
        if p is None or os.path.isabs(p) or p.startswith("~"):
            return p
        return os.path.relpath((src / p).resolve(), dst.resolve())

    data = recipe.data.model_copy(update={"path": fix(recipe.data.path), "dataset_dir": fix(recipe.data.dataset_dir)})
    model = recipe.model.model_copy(update={"path": fix(recipe.model.path)})
    return recipe.model_copy(update={"data": data, "model": model})
