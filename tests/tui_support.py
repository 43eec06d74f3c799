"""Helpers for the TUI tests: an app on the test's own store, a frozen clock, replayed telemetry."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from zerodeck.core import paths
from zerodeck.store import queries
from zerodeck.store.engine import open_store
from zerodeck.store.models import Run
from zerodeck.tui.app import ZerodeckApp, make_app
from zerodeck.tui.telemetry import replay_source

from .compare_seed import T0, seed

FIXTURES = Path(__file__).resolve().parent / "fixtures"
NPU8 = FIXTURES / "npu-smi" / "info_910b3_25.2.0_procs_noname.txt"
A3_16 = FIXTURES / "npu-smi" / "info_a3_16die_synth.txt"
BAD_RECIPES = FIXTURES / "recipes" / "bad"
TUI_RECIPES = FIXTURES / "tui"
NOW = T0 + timedelta(hours=6)


def replay(path: Path) -> Callable[[], Any]:
    return replay_source("npu-smi", [path.read_text(encoding="utf-8")])


def app(source: Path | None = NPU8, *, bad: bool = False, extra: list[Path] | None = None,
        **kw: Any) -> ZerodeckApp:
    dirs = [paths.shipped_recipes_dir()] + ([BAD_RECIPES] if bad else []) + (extra or [])
    kw.setdefault("poll_interval", 3600.0)  # one poll: snapshots must not move under the camera
    kw.setdefault("watch_interval", 0.05)
    kw.setdefault("reconcile", False)  # the runs written here have no supervisor to find
    return make_app(source=replay(source) if source else _no_cards, clock=lambda: NOW, catalog_dirs=dirs, **kw)


def _no_cards() -> Any:
    from zerodeck.tui.view import Frame

    return Frame(source="cpu")


def seeded(log_dir: Path | None = None) -> dict[str, int]:
    """The compare seed runs, plus a failure snapshot and a log for the OOM run."""
    with open_store() as s:
        ids = seed(s)
        fields: dict[str, Any] = {"failure_snapshot": json.dumps(
            {"source": "npu-smi", "cards": [{"key": "3", "hbm_used_mb": 65536, "hbm_total_mb": 65536}]})}
        if log_dir is not None:
            log = log_dir / "oom.log"
            log.write_text("step 1 loss 2.0\nRuntimeError: NPU out of memory. EL0004\n", encoding="utf-8")
            fields["log_path"] = str(log.relative_to(log_dir))
        queries.update_run(s, ids["oom"], **fields)
    return ids


def add_running(log_path: Path, pgid: int | None = None, name: str = "demo-cpu-zero3") -> int:
    """A run in the store as a supervisor would leave it mid-way: running, a few metrics, a log."""
    with open_store() as s:
        queries.save_snapshot(s, hash="hrun", name=name, toml=f'name = "{name}"\n', source_path=None)
        run = queries.add_run(s, Run(name=name, recipe_hash="hrun", status="running", device="cpu", cards=2,
                                     backend="builtin", log_path=str(log_path), pgid=pgid, created_at=T0,
                                     started_at=NOW - timedelta(seconds=30), steps_total=20, steps_done=5))
        assert run.id is not None
        queries.add_metrics(s, run.id, [{"step": i, "loss": 2.0 - i / 10} for i in range(1, 6)])
        return run.id


async def until(pilot: Any, cond: Callable[[], Any], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.02)


def drive(the_app: ZerodeckApp, body: Callable[[Any], Awaitable[None]], size: tuple[int, int] = (80, 24)) -> None:
    async def main() -> None:
        async with the_app.run_test(size=size) as pilot:
            await body(pilot)

    asyncio.run(main())


def catalog_loaded(a: ZerodeckApp) -> bool:
    return bool(getattr(a.screen, "loaded", False))


def text_of(widget: Any) -> str:
    """What a widget shows, as plain text."""
    rendered = widget.render()
    return getattr(rendered, "plain", str(rendered))


def far_run_ids() -> None:
    """Start this store's run ids far from 1. Launched processes are tagged with the run id alone,
    so another store's `stop 1` on the same machine would otherwise reach this test's run."""
    import os

    with open_store() as s:
        queries.save_snapshot(s, hash="old", name="old", toml='name = "old"\n', source_path=None)
        queries.add_run(s, Run(id=7000 + os.getpid() % 1000, name="old", recipe_hash="old", status="finished",
                               outcome="succeeded", created_at=T0))
