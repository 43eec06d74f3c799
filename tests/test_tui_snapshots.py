"""Snapshot tests of every screen at 80 x 24 and 120 x 40 (pytest-textual-snapshot).

Update the stored SVGs after an intended change with `pytest tests/test_tui_snapshots.py --snapshot-update`.
The store, the clock and the telemetry are fixed, so a diff is a change in what a user would see.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable
from zerodeck.core.telemetry.sources import ReplaySource

from .tui_support import (
    A3_16,
    BAD_RECIPES,
    FIXTURES,
    NPU8,
    add_running,
    app,
    catalog_loaded,
    on_screen,
    seeded,
    store,
    table_settled,
    until,
)

H200 = FIXTURES / "gpu" / "nvidia-smi_query.csv"

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]


def _keys(table: DataTable) -> list[str]:
    return [str(k.value) for k in table.rows]


@pytest.mark.parametrize("size", SIZES)
def test_catalog(snap_compare: Any, size: tuple[int, int], monkeypatch: pytest.MonkeyPatch) -> None:
    # Bad files are shown with their path: make it relative so the picture is the same in any checkout.
    monkeypatch.chdir(BAD_RECIPES.parent.parent)
    a = app(extra=[Path("recipes") / "bad"])

    async def ready(pilot: Any) -> None:
        await until(pilot, lambda: catalog_loaded(a))
        table = a.screen.query_one("#catalog", DataTable)
        table.move_cursor(row=_keys(table).index("g:qwen2.5-7b-lora"))
        await pilot.press("g")
        await pilot.pause()

    assert snap_compare(a, terminal_size=size, run_before=ready)


@pytest.mark.parametrize("size", SIZES)
def test_plan(snap_compare: Any, size: tuple[int, int]) -> None:
    a = app()

    async def ready(pilot: Any) -> None:
        await until(pilot, lambda: catalog_loaded(a))
        table = a.screen.query_one("#catalog", DataTable)
        table.move_cursor(row=_keys(table).index("g:qwen2.5-32b-lora"))
        await pilot.press("g", "down", "enter")
        await until(pilot, lambda: getattr(a.screen.query("#plan-bars").first(), "numbers", None) is not None)
        await pilot.pause()

    assert snap_compare(a, terminal_size=size, run_before=ready)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("fixture", [pytest.param(NPU8, id="8x910b"), pytest.param(A3_16, id="a3-16dies"),
                                     pytest.param(H200, id="h200")])
def test_live(snap_compare: Any, size: tuple[int, int], fixture: Path) -> None:
    a = app(fixture)
    if fixture == H200:  # the NVIDIA columns: nvidia-smi's CSV through the real parser
        a.source = ReplaySource("nvidia", [fixture.read_text(encoding="utf-8")])

    async def ready(pilot: Any) -> None:
        await pilot.press("2")
        await until(pilot, lambda: len(getattr(a.screen, "rows", {})) > 0)
        await pilot.pause()

    assert snap_compare(a, terminal_size=size, run_before=ready)


def _step(i: int) -> str:
    return json.dumps({"zerodeck": "step", "step": i, "total_steps": 500, "loss": round(2.0 / (1 + i / 40), 4),
                       "lr": 1e-4, "samples_per_s": 12.0 + i % 3, "rank": 0})


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("curves", [pytest.param(False, id="log"), pytest.param(True, id="curves")])
def test_live_following_a_run(snap_compare: Any, size: tuple[int, int], curves: bool, tmp_path: Path) -> None:
    """A run at step 220 of 500: the tail shows its newest step lines as text; the curves (`c` on a
    narrow terminal, beside the log on a wide one) show loss and throughput over the steps."""
    log = tmp_path / "run.log"
    log.write_text("".join(_step(i) + "\n" for i in range(1, 221)), encoding="utf-8")
    run_id = add_running(log, name="qwen2.5-7b-lora-zero3")
    store().update_run(run_id, steps_total=500, steps_done=220)
    store().upsert_metrics(run_id, [{"step": i, "loss": round(2.0 / (1 + i / 40), 4), "samples_per_s": 12.0 + i % 3}
                                    for i in range(6, 221)])
    a = app(NPU8)

    async def ready(pilot: Any) -> None:
        await pilot.press("2")
        await until(pilot, lambda: len(getattr(a.screen, "rows", {})) > 0 and a.progress is not None
                    and a.progress.step == 220 and len(a.progress.curves.loss) == 220)
        if curves:
            await pilot.press("c")
        await pilot.pause(0.3)

    assert snap_compare(a, terminal_size=size, run_before=ready)


@pytest.mark.parametrize("size", SIZES)
def test_runs(snap_compare: Any, size: tuple[int, int]) -> None:
    seeded()
    a = app(None)

    async def ready(pilot: Any) -> None:
        await pilot.press("3")
        await until(pilot, lambda: table_settled(a.screen.query_one("#runs", DataTable), 4))
        await until(pilot, lambda: on_screen(a, "qwen2.5-14b-lora-z0", "demo-cpu-zero2"))
        await pilot.pause()

    assert snap_compare(a, terminal_size=size, run_before=ready)


@pytest.mark.parametrize("size", SIZES)
def test_run_record(snap_compare: Any, size: tuple[int, int], tmp_path: Path,
                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    ids = seeded(tmp_path)
    a = app(None)

    async def ready(pilot: Any) -> None:
        await pilot.press("3")
        table = a.screen.query_one("#runs", DataTable)
        await until(pilot, lambda: table.row_count == 4)
        table.move_cursor(row=_keys(table).index(str(ids["oom"])))
        await pilot.press("enter")
        await until(pilot, lambda: getattr(a.screen, "detail", None) is not None)
        await pilot.pause()

    assert snap_compare(a, terminal_size=size, run_before=ready)


@pytest.mark.parametrize("size", SIZES)
def test_run_record_curves(snap_compare: Any, size: tuple[int, int]) -> None:
    """A finished run's record with its loss and throughput curves, side by side: both in view at
    80 x 24 without scrolling."""
    ids = seeded()
    store().upsert_metrics(ids["z0"], [{"step": s, "loss": round(1.5 + 0.5 * 0.996 ** s + (s % 7) / 200, 4),
                                        "samples_per_s": 11.0 + (s % 5) / 5} for s in range(2, 1000, 9)])
    a = app(None)

    async def ready(pilot: Any) -> None:
        await pilot.press("3")
        table = a.screen.query_one("#runs", DataTable)
        await until(pilot, lambda: table.row_count == 4)
        table.move_cursor(row=_keys(table).index(str(ids["z0"])))
        await pilot.press("enter")
        # The plots are mounted just after the fields have painted.
        await until(pilot, lambda: bool(a.screen.query("#detail-speed"))
                    and a.screen.query_one("#detail-curves").display)
        await pilot.pause()

    assert snap_compare(a, terminal_size=size, run_before=ready)


@pytest.mark.parametrize("size", SIZES)
def test_compare(snap_compare: Any, size: tuple[int, int]) -> None:
    ids = seeded()
    a = app(None)
    a.compare_ids = [ids["z0"], ids["z3"], ids["oom"]]

    async def ready(pilot: Any) -> None:
        await pilot.press("4")
        await until(pilot, lambda: table_settled(a.screen.query_one("#compare", DataTable), 3))
        await pilot.press("d")
        await pilot.pause(0.3)
        await pilot.pause()

    assert snap_compare(a, terminal_size=size, run_before=ready)


@pytest.mark.parametrize("size", SIZES)
def test_catalog_filtering(snap_compare: Any, size: tuple[int, int]) -> None:
    """After `/` the mode bar says keys are text and the footer offers only the filter's keys."""
    a = app()

    async def ready(pilot: Any) -> None:
        await until(pilot, lambda: catalog_loaded(a))
        a.screen.query_one("#filter").cursor_blink = False  # a blinking cursor would flip the picture
        await pilot.press("slash", *"qwen2.5-72")
        await until(pilot, lambda: table_settled(a.screen.query_one("#catalog", DataTable), 4))
        await pilot.pause(0.3)

    assert snap_compare(a, terminal_size=size, run_before=ready)


@pytest.mark.parametrize("size", SIZES)
def test_confirm_launch(snap_compare: Any, size: tuple[int, int], monkeypatch: pytest.MonkeyPatch) -> None:
    from zerodeck.core import paths

    monkeypatch.chdir(paths.shipped_recipes_dir().parent)  # the recipe's path, the same in any checkout
    a = app()

    async def ready(pilot: Any) -> None:
        await until(pilot, lambda: catalog_loaded(a))
        table = a.screen.query_one("#catalog", DataTable)
        table.move_cursor(row=_keys(table).index("g:qwen2.5-32b-lora"))
        await pilot.press("g", "down", "down", "down", "l")
        await until(pilot, lambda: getattr(a.screen, "ready", False))
        await pilot.pause(0.3)

    assert snap_compare(a, terminal_size=size, run_before=ready)


@pytest.mark.parametrize("size", SIZES)
def test_runs_marked(snap_compare: Any, size: tuple[int, int]) -> None:
    """Two marked rows: a mark for NO_COLOR terminals and a style for a glance."""
    seeded()
    a = app(None)

    async def ready(pilot: Any) -> None:
        await pilot.press("3")
        await until(pilot, lambda: table_settled(a.screen.query_one("#runs", DataTable), 4))
        await until(pilot, lambda: on_screen(a, "qwen2.5-14b-lora-z0", "demo-cpu-zero2"))
        await pilot.press("down", "space", "down", "space")
        await pilot.pause(0.3)

    assert snap_compare(a, terminal_size=size, run_before=ready)


def test_stop_asked(snap_compare: Any, tmp_path: Path) -> None:
    add_running(tmp_path / "run.log")
    a = app(None)

    async def ready(pilot: Any) -> None:
        await pilot.press("3")
        runs = a.screen.query_one("#runs", DataTable)
        await until(pilot, lambda: table_settled(runs, 1))
        await until(pilot, lambda: a.active_runs)
        await pilot.press("s")
        await pilot.pause(0.3)
        # The Runs table under the question may reload when the active runs arrive: its columns are
        # measured on a later refresh, so wait for that too.
        await until(pilot, lambda: table_settled(runs, 1))

    assert snap_compare(a, terminal_size=(80, 24), run_before=ready)
