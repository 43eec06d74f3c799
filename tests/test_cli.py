from __future__ import annotations

import argparse

from zerodeck.core.cli import build_parser

from .import_probe import STORE, heavy_modules_loaded


def _all_parsers(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = (), summary: str | None = None):
    """Every parser, parents first, with the one-line help its parent lists it under."""
    yield prefix, parser, summary
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            summaries = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield from _all_parsers(sub, (*prefix, name), summaries.get(name))


def test_every_command_has_help(cli) -> None:
    shown: dict[tuple[str, ...], str] = {}
    for path, _parser, summary in _all_parsers(build_parser()):
        code, out, err = cli(*path, "--help")
        assert code == 0, (path, err)
        assert "usage: zerodeck" in out
        shown[path] = " ".join(out.split())
        if path:
            # Each sub-command has a one-line summary, and its parent's --help lists it.
            assert summary, f"{' '.join(path)}: no help= in add_parser"
            assert " ".join(summary.split()) in shown[path[:-1]], path
    assert len(shown) >= 4


def test_version(cli) -> None:
    from zerodeck.core import __version__

    code, out, _ = cli("--version")
    assert code == 0 and out.strip() == f"zerodeck {__version__}"


def test_version_matches_pyproject() -> None:
    import tomllib
    from zerodeck.core import __version__

    from .conftest import ROOT

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["version"] == __version__


def test_usage_error_exits_2(cli) -> None:
    code, _, err = cli("recipes", "frobnicate")
    assert code == 2 and "invalid choice" in err


def test_headless_cli_imports_neither_textual_nor_torch() -> None:
    code = (
        "import contextlib, io\n"
        "from zerodeck.core.cli import build_parser, main\n"
        "build_parser()\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['recipes', 'list', '--json'])\n"
    )
    assert heavy_modules_loaded(code, also=("rich",)) == []


def test_help_loads_neither_the_store_nor_the_ui() -> None:
    """`zerodeck --help` builds the whole argparse tree: every command module stays light at import.
    So does every command before its handler runs: the chart commands start their painter then, and
    package metadata (doctor's) and the comparison code (compare's) are read after that."""
    code = (
        "import contextlib, io\n"
        "from zerodeck.core.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['--help'])\n"
    )
    assert heavy_modules_loaded(code, also=(*STORE, "rich", "importlib.metadata", "zerodeck.core.compare")) == []


def test_core_and_store_never_import_textual() -> None:
    """Layering (ARCHITECTURE.md, "Layers"): walk the source of core/ and store/ for a textual import."""
    import ast

    from .conftest import ROOT

    offenders = []
    for folder in ("core", "store"):
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                if any(n.split(".")[0] in ("textual", "rich") or n.startswith("zerodeck.tui") for n in names):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    # the CLI's TUI entry point is the one allowed bridge
    assert [o for o in offenders if not o.startswith("core/cli/__init__.py")] == []


def test_store_never_imports_core() -> None:
    import ast

    from .conftest import ROOT

    for path in (ROOT / "store").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("zerodeck.core"), path


def test_tui_that_cannot_start_says_why_and_exits_1(cli, monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "zerodeck.tui.app", None)  # the import fails as a broken install's would
    code, out, err = cli()
    assert code == 1 and out == ""  # not the catalog listing it used to fall back to
    assert err.startswith("zerodeck: cannot start the TUI: ") and len(err.strip().splitlines()) == 1


def test_subcommands_never_import_textual() -> None:
    code = (
        "import contextlib, io\n"
        "from zerodeck.core.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['plan', '--matrix'])\n"
        "    main(['compare', '--all', '--json'])\n"
    )
    assert heavy_modules_loaded(code) == []
