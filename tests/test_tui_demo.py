"""The CPU demo end to end through the TUI: launch from the catalog, watch two rank panels, see it
finish and appear in Runs. A real DeepSpeed run on CPU ranks, so `slow`."""

from __future__ import annotations

from typing import Any

import pytest
from textual.widgets import DataTable
from zerodeck.core import paths
from zerodeck.tui.app import make_app
from zerodeck.tui.screens.confirm import ConfirmScreen

from .tui_support import drive, far_run_ids, until


@pytest.mark.slow
def test_cpu_demo_from_catalog_to_runs() -> None:
    far_run_ids()
    a = make_app(catalog_dirs=[paths.shipped_recipes_dir()], poll_interval=0.5, watch_interval=0.5)
    seen_ranks: set[str] = set()

    async def body(pilot: Any) -> None:
        await until(pilot, lambda: getattr(a.screen, "loaded", False), timeout=30)
        table = a.screen.query_one("#catalog", DataTable)
        table.move_cursor(row=[str(k.value) for k in table.rows].index("r:demo-cpu-zero3"))
        await pilot.press("l")  # launching asks first: what will run on which cards
        await until(pilot, lambda: isinstance(a.screen, ConfirmScreen) and a.screen.ready, timeout=30)
        await pilot.press("y")
        await until(pilot, lambda: a.current_mode == "live" and a.followed_run is not None, timeout=60)
        run_id = a.followed_run

        def ranks() -> bool:
            frame = a.latest_frame
            if frame is not None:
                seen_ranks.update(c.key for c in frame.cards if c.key.startswith("rank") and c.used_mb)
            return {"rank0", "rank1"} <= seen_ranks

        await until(pilot, ranks, timeout=240)
        rows = a.screen.rows
        assert {"rank0", "rank1"} <= set(rows)
        await until(pilot, lambda: a.progress is not None and a.progress.run.status == "finished", timeout=300)
        assert a.progress is not None and a.progress.run.outcome == "succeeded", a.progress.run.reason
        await pilot.press("3")
        runs = a.screen.query_one("#runs", DataTable)
        await until(pilot, lambda: str(run_id) in [str(k.value) for k in runs.rows], timeout=30)
        cells = [str(c) for c in runs.get_row(str(run_id))]
        assert "demo-cpu-zero3" in cells and "succeeded" in cells

    drive(a, body, size=(100, 30))
