from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from .conftest import ROOT

PREFIX = {"core": "zerodeck.core", "store": "zerodeck.store", "tui": "zerodeck.tui", "recipes": "zerodeck.recipes"}


def test_every_package_is_listed_in_pyproject() -> None:
    """A regular install ships only the listed packages; a forgotten one breaks only after install."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for top, name in PREFIX.items():
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top)
            found.add(".".join([name, *rel.parts]) if rel.parts else name)
    assert found == listed


def _pins() -> dict[str, str]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = [*meta["dependencies"], *meta["optional-dependencies"]["test"]]
    return dict(spec.split("==", 1) for spec in specs if "==" in spec and ";" not in spec)


def test_snapshot_stack_is_pinned_to_what_is_installed() -> None:
    """The TUI snapshots are pictures of one Textual + rich rendering: the pins name the versions they
    were drawn with, so an environment with others fails here, by name, before 14 snapshots do."""
    from importlib.metadata import version

    pins = _pins()
    for name in ("textual", "pytest-textual-snapshot", "rich"):
        assert name in pins, f"{name} is not pinned exactly in pyproject.toml"
        assert version(name) == pins[name], f"{name} {version(name)} installed, {pins[name]} pinned"


def test_layering_roots_are_the_code_packages() -> None:
    """import-linter checks only what its roots hold: each code folder (all but the recipe data) is one."""
    roots = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["root_packages"]
    assert sorted(roots) == sorted(name for top, name in PREFIX.items() if top != "recipes")


@pytest.mark.slow
@pytest.mark.parametrize("editable", [False, True], ids=["regular", "editable"])
def test_install_exposes_only_the_zerodeck_namespace(tmp_path: Path, editable: bool) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    target = ["-e", str(ROOT)] if editable else [str(ROOT)]
    proc = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", *target],
                          cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    probe = (
        "import importlib.util, sys\n"
        "assert importlib.util.find_spec('core') is None, 'bare core importable'\n"
        "assert importlib.util.find_spec('store') is None, 'bare store importable'\n"
        "import zerodeck.core, zerodeck.store.models, zerodeck.recipes\n"
        "from zerodeck.core.paths import shipped_recipes_dir\n"
        "assert (shipped_recipes_dir() / 'demo-cpu-zero3.toml').is_file()\n"
        # The Chinese catalog ships as package data: without it `LANG=zh_CN...` silently stays English.
        "from zerodeck.core.i18n import catalog_path\n"
        "assert catalog_path('zh').is_file(), catalog_path('zh')\n"
    )
    # Outside the checkout, with this environment's site-packages for the dependencies.
    import site

    env = {"PYTHONPATH": ":".join(site.getsitepackages()), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([str(py), "-c", probe], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
