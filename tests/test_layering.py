"""The layering contracts of ARCHITECTURE.md ("Layers"), as import-linter checks them.

One test per contract, so a failure names the rule that broke; `lint-imports` prints the import chain.
The AST walks in test_cli.py stay beside these: they need no extra tool.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from .conftest import ROOT

CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
CONTRACT_IDS = [c["id"] for c in CONFIG["contracts"]]


def _lint_imports() -> str | None:
    beside = Path(sys.executable).with_name("lint-imports")
    return str(beside) if beside.exists() else shutil.which("lint-imports")


def test_the_three_contracts_are_declared() -> None:
    assert CONTRACT_IDS == ["headless-core", "tui-not-cli", "store-not-core"]
    headless = CONFIG["contracts"][0]
    # Exactly one declared exception: `zerodeck` with no command opens the TUI.
    assert headless["ignore_imports"] == ["zerodeck.core.cli -> zerodeck.tui.app"]
    assert set(headless["forbidden_modules"]) == {"textual", "rich", "zerodeck.tui"}


@pytest.mark.parametrize("contract", CONTRACT_IDS)
def test_contract_is_kept(contract: str) -> None:
    tool = _lint_imports()
    if tool is None:
        pytest.skip("lint-imports is not installed (pip install -e '.[test]' brings import-linter)")
    proc = subprocess.run([tool, "--no-cache", "--no-logo", "--contract", contract],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "1 kept, 0 broken" in proc.stdout
