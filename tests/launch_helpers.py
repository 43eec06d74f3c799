"""Shared helpers for the launch tests: recipes written on the fly, store reads, process checks."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "recipes"


def demo_copy(tmp: Path, stage: int = 3, **overrides: str) -> Path:
    """A copy of recipes/demo-cpu-zero{stage}.toml in `tmp` (with its data), lines replaced by key."""
    (tmp / "data").mkdir(parents=True, exist_ok=True)
    shutil.copy(DEMO / "data" / "demo-alpaca.jsonl", tmp / "data" / "demo-alpaca.jsonl")
    text = (DEMO / f"demo-cpu-zero{stage}.toml").read_text()
    lines = []
    for line in text.splitlines():
        key = line.split("=")[0].strip()
        lines.append(f"{key} = {overrides.pop(key)}" if key in overrides and "=" in line else line)
    extra = overrides.pop("__extra__", "")
    assert not overrides, f"keys not in the demo recipe: {overrides}"
    path = tmp / f"demo-z{stage}.toml"
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def home_store() -> Any:
    """The store the test's CLI calls use (the conftest points ZERODECK_HOME at a fresh directory)."""
    from zerodeck.store.api import Store

    return Store.from_environment()


def run_row(run_id: int) -> Any:
    return home_store().run(run_id)


def wait_for(pred: Any, timeout: float, poll: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"condition not met within {timeout}s")
