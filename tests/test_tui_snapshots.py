"""Snapshot tests of every screen at 80 x 24 and 120 x 40 (pytest-textual-snapshot).

Update the stored SVGs after an intended change with `pytest tests/test_tui_snapshots.py --snapshot-update`.
The store, the clock and the telemetry are fixed, so a diff is a change in what a user would see.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable

from .tui_support import A3_16, BAD_RECIPES, NPU8, add_running, app, catalog_loaded, seeded, until

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
@pytest.mark.parametrize("fixture", [pytest.param(NPU8, id="8x910b"), pytest.param(A3_16, id="a3-16dies")])
def test_live(snap_compare: Any, size: tuple[int, int], fixture: Path) -> None:
    a = app(fixture)

    async def ready(pilot: Any) -> None:
        await pilot.press("2")
        await until(pilot, lambda: len(getattr(a.screen, "rows", {})) > 0)
        await pilot.pause()

    assert snap_compare(a, terminal_size=size, run_before=ready)


@pytest.mark.parametrize("size", SIZES)
def test_runs(snap_compare: Any, size: tuple[int, int]) -> None:
    seeded()
    a = app(None)

    async def ready(pilot: Any) -> None:
        await pilot.press("3")
        await until(pilot, lambda: a.screen.query_one("#runs", DataTable).row_count == 4)
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
def test_compare(snap_compare: Any, size: tuple[int, int]) -> None:
    ids = seeded()
    a = app(None)
    a.compare_ids = [ids["z0"], ids["z3"], ids["oom"]]

    async def ready(pilot: Any) -> None:
        await pilot.press("4")
        await until(pilot, lambda: a.screen.query_one("#compare", DataTable).row_count == 3)
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
        await until(pilot, lambda: a.screen.query_one("#catalog", DataTable).row_count == 4)
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
        await until(pilot, lambda: a.screen.query_one("#runs", DataTable).row_count == 4)
        await pilot.press("down", "space", "down", "space")
        await pilot.pause(0.3)

    assert snap_compare(a, terminal_size=size, run_before=ready)


def test_stop_asked(snap_compare: Any, tmp_path: Path) -> None:
    add_running(tmp_path / "run.log")
    a = app(None)

    async def ready(pilot: Any) -> None:
        await pilot.press("3")
        await until(pilot, lambda: a.screen.query_one("#runs", DataTable).row_count == 1)
        await until(pilot, lambda: a.active_runs)
        await pilot.press("s")
        await pilot.pause(0.3)

    assert snap_compare(a, terminal_size=(80, 24), run_before=ready)
