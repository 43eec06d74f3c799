"""Helpers for the TUI tests: an app on the test's own store, a frozen clock, replayed telemetry."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from zerodeck.core import paths
from zerodeck.core.telemetry.model import Snapshot
from zerodeck.core.telemetry.sources import DEFAULT_TIMEOUT, ReplaySource, Source
from zerodeck.store.api import RunFields, Store
from zerodeck.tui.app import ZerodeckApp, make_app

from .compare_seed import T0, seed

FIXTURES = Path(__file__).resolve().parent / "fixtures"
NPU8 = FIXTURES / "npu-smi" / "info_910b3_25.2.0_procs_noname.txt"
A3_16 = FIXTURES / "npu-smi" / "info_a3_16die_synth.txt"
BAD_RECIPES = FIXTURES / "recipes" / "bad"
TUI_RECIPES = FIXTURES / "tui"
NOW = T0 + timedelta(hours=6)


def replay(path: Path) -> Source:
    return ReplaySource("npu-smi", [path.read_text(encoding="utf-8")])


def store() -> Store:
    """The test's store (conftest gives each test its own ZERODECK_HOME)."""
    return Store.from_environment()


def app(source: Path | None = NPU8, *, bad: bool = False, extra: list[Path] | None = None,
        **kw: Any) -> ZerodeckApp:
    dirs = [paths.shipped_recipes_dir()] + ([BAD_RECIPES] if bad else []) + (extra or [])
    kw.setdefault("poll_interval", 3600.0)  # one poll: snapshots must not move under the camera
    kw.setdefault("watch_interval", 0.05)
    kw.setdefault("reconcile", False)  # the runs written here have no supervisor to find
    kw.setdefault("with_host", False)  # this machine's RAM would move under the camera
    return make_app(store(), source=replay(source) if source else NoCards(), clock=lambda: NOW,
                    catalog_dirs=dirs, **kw)


class NoCards:
    """A source that sees no card (a machine with no accelerator and no run)."""

    name = "cpu"

    def read(self, timeout: float = DEFAULT_TIMEOUT) -> Snapshot:
        return Snapshot(source="cpu")


def seeded(log_dir: Path | None = None) -> dict[str, int]:
    """The compare seed runs, plus a failure snapshot and a log for the OOM run."""
    ids = seed(store())
    fields: RunFields = {"failure_snapshot": {
        "source": "npu-smi", "cards": [{"key": "3", "hbm_used_mb": 65536, "hbm_total_mb": 65536}]}}
    if log_dir is not None:
        log = log_dir / "oom.log"
        log.write_text("step 1 loss 2.0\nRuntimeError: NPU out of memory. EL0004\n", encoding="utf-8")
        fields["log_path"] = str(log.relative_to(log_dir))
    store().update_run(ids["oom"], **fields)
    return ids


def add_running(log_path: Path, pgid: int | None = None, name: str = "demo-cpu-zero3") -> int:
    """A run in the store as a supervisor would leave it mid-way: running, a few metrics, a log."""
    s = store()
    s.save_snapshot(hash="hrun", name=name, toml=f'name = "{name}"\n', source_path=None)
    run_id = s.add_run(name=name, recipe_hash="hrun", status="running", device="cpu", cards=2, backend="builtin",
                       log_path=str(log_path), pgid=pgid, created_at=T0, started_at=NOW - timedelta(seconds=30),
                       steps_total=20, steps_done=5)
    s.upsert_metrics(run_id, [{"step": i, "loss": 2.0 - i / 10} for i in range(1, 6)])
    return run_id


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

    s = store()
    s.save_snapshot(hash="old", name="old", toml='name = "old"\n', source_path=None)
    s.add_run_at(7000 + os.getpid() % 1000, name="old", recipe_hash="old", status="finished", outcome="succeeded",
                 created_at=T0)


def on_screen(app: Any, *texts: str) -> bool:
    """Every text is in the picture the app would give now. A table whose widths were just measured
    can still be drawn from lines rendered before (a loaded machine's picture then cuts every cell
    to its header's width): this waits for what the snapshot itself will see."""
    svg = app.export_screenshot()
    shown = html.unescape(re.sub(r"<[^>]+>", "", svg)).replace("\xa0", " ")
    return all(t in shown for t in texts)


def table_settled(table: Any, rows: int) -> bool:
    """`rows` rows added and the column widths computed from them: DataTable measures its cells on a
    later refresh, and a picture taken in between has every column at its header's width."""
    return bool(table.row_count == rows and not table._require_update_dimensions)
