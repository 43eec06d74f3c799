"""Shared helpers for the launch tests: recipes written on the fly, store reads, process checks."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
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


def command_recipe(tmp: Path, program: str, retries: int = 0, name: str | None = None) -> Path:
    """A `command` recipe running `program` (Python, dedented) with the run directory as its argument:
    the supervisor's real path without training, fast enough for every test."""
    prog = tmp / "prog.py"
    prog.write_text(textwrap.dedent(program))
    argv = json.dumps([sys.executable, str(prog), "{run_dir}"])
    text = demo_copy(tmp, 0).read_text().replace(
        '[launch]\nbackend = "builtin"', f'[launch]\nbackend = "command"\nargv = {argv}\nretries = {retries}')
    if name is not None:
        text = text.replace('name = "demo-cpu-zero0"', f'name = "{name}"', 1)
    path = tmp / "cmd.toml"
    path.write_text(text)
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


def orphan_run(zd_home: Path, log: str) -> int:
    """A run recorded as running whose supervisor is gone (a dead PID) and whose processes are gone."""
    from zerodeck.core.launch.api import create_run
    from zerodeck.core.recipe import load_recipe_file

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    recipe_path = DEMO / "demo-cpu-zero0.toml"
    store = home_store()
    run_id = create_run(store, load_recipe_file(recipe_path), recipe_path)
    run_dir = zd_home / "runs" / str(run_id)
    run_dir.mkdir(parents=True)
    (run_dir / "run.log").write_text(log)
    store.update_run(run_id, status="running", supervisor_pid=dead.pid, workdir=str(run_dir),
                     log_path=str(run_dir / "run.log"))
    return run_id


def built_env(script: str, what: str, timeout: int) -> Path:
    """A cached training environment built by `scripts/SCRIPT` (which prints its path last), or a
    test skip that says why it could not be built."""
    import pytest

    proc = subprocess.run(["bash", str(ROOT / "scripts" / script)], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        pytest.skip(f"the {what} environment could not be built (scripts/{script}): {tail}")
    return Path(proc.stdout.strip().splitlines()[-1])
