"""Pilot tests for the TUI flows against a temporary store (each test has its own ZERODECK_HOME)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Input, Log, Static
from zerodeck.core import paths

from .tui_support import A3_16, NPU8, app, catalog_loaded, drive, seeded, text_of, until


def _rows(table: DataTable) -> list[str]:
    return [str(k.value) for k in table.rows]


def test_catalog_groups_grids_and_lists_bad_files() -> None:
    a = app(bad=True)

    async def body(pilot: Any) -> None:
        await until(pilot, lambda: catalog_loaded(a))
        keys = _rows(a.screen.query_one("#catalog", DataTable))
        assert "r:demo-cpu-zero3" in keys
        assert "g:qwen2.5-32b-lora" in keys
        assert not any(k.startswith("r:qwen2.5-32b") for k in keys)  # grids start folded
        problems = text_of(a.screen.query_one("#problems", Static))
        assert "stage4.toml" in problems and "zero.stage" in problems
        assert "unknown_key.toml" in problems

    drive(a, body)


def test_catalog_filter_by_typing_and_expand_grid() -> None:
    a = app()

    async def body(pilot: Any) -> None:
        await until(pilot, lambda: catalog_loaded(a))
        table = a.screen.query_one("#catalog", DataTable)
        await pilot.press("slash", "z")  # typing goes to the filter only after `/`
        assert a.screen.query_one("#filter", Input).value == "z"
        for ch in "ero3":
            await pilot.press(ch)
        await pilot.press("enter")  # back to the table
        assert a.screen.focused is table
        keys = _rows(table)
        assert "r:demo-cpu-zero3" in keys and "r:demo-cpu-zero0" not in keys
        await pilot.press("escape")
        assert "r:demo-cpu-zero0" in _rows(table)
        table.move_cursor(row=_rows(table).index("g:qwen2.5-7b-lora"))
        await pilot.press("g")
        keys = _rows(table)
        members = [k for k in keys if k.startswith("r:qwen2.5-7b-lora")]
        assert len(members) == 3
        assert a.screen.current_key() == "g:qwen2.5-7b-lora"

    drive(a, body)


def test_filter_keeps_a_burst_of_letters_that_are_also_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Over SSH a typed word arrives in one burst: after `/`, `e` and `3` inside it are letters of
    the filter, not Edit and the Runs screen; once the filter is left, keys are commands again."""
    monkeypatch.setenv("EDITOR", "false")
    a = app()

    async def body(pilot: Any) -> None:
        await until(pilot, lambda: catalog_loaded(a))
        table = a.screen.query_one("#catalog", DataTable)
        screen = a.screen
        await pilot.press("slash", "z", "e", "r", "o", "3")
        assert a.screen is screen
        assert screen.query_one("#filter", Input).value == "zero3"
        await pilot.press("enter")
        assert _rows(table) == ["r:demo-cpu-zero3"]
        await pilot.press("3")  # the word is done: keys are keys again
        assert a.screen is not screen

    drive(a, body)


def test_catalog_shows_planner_verdicts_and_plan_screen() -> None:
    a = app()

    async def body(pilot: Any) -> None:
        await until(pilot, lambda: catalog_loaded(a))
        rows = {r.name: r for r in a.screen.rows}
        z0 = next(n for n in rows if n.startswith("qwen2.5-32b-lora-z0"))
        z3 = next(n for n in rows if n.startswith("qwen2.5-32b-lora-z3"))
        assert rows[z0].verdict == "oom" and rows[z3].verdict == "fits"
        table = a.screen.query_one("#catalog", DataTable)
        table.move_cursor(row=_rows(table).index("g:qwen2.5-32b-lora"))
        await pilot.press("g", "down", "enter")
        await until(pilot, lambda: a.screen.__class__.__name__ == "PlanScreen")
        assert a.screen.recipe_name == z0
        await until(pilot, lambda: a.screen.query_one("#plan-bars").numbers is not None)
        bars = text_of(a.screen.query_one("#plan-bars"))
        for term in ("weights", "gradients", "optimizer", "activations", "logits", "buffers", "runtime"):
            assert term in bars
        assert "OOM" in bars and "capacity 64.0 GiB" in bars
        assert "ZeRO-3" in text_of(a.screen.query_one("#plan-advice", Static))
        await pilot.press("escape")
        assert a.screen.__class__.__name__ == "CatalogScreen"

    drive(a, body, size=(100, 30))


@pytest.mark.parametrize(("fixture", "n", "key", "used"), [(NPU8, 8, "2", "40.1/64.0G"), (A3_16, 16, "7.1", "29.3")])
def test_live_replays_npu_smi_layouts(fixture: Path, n: int, key: str, used: str) -> None:
    a = app(fixture)

    async def body(pilot: Any) -> None:
        await pilot.press("2")
        await until(pilot, lambda: len(getattr(a.screen, "rows", {})) == n)
        row = a.screen.rows[key]
        assert used in text_of(row)
        assert f"npu-smi: {n} card(s)" in text_of(a.screen.query_one("#live-status", Static))
        assert a.frames == 1  # one poll: the interval is an hour

    drive(a, body, size=(120, 40))


def test_live_reattaches_to_a_running_run_and_follows_its_log(tmp_path: Path) -> None:
    from .tui_support import add_running

    log = tmp_path / "run.log"
    log.write_text("starting\nstep 5 loss 1.5\n", encoding="utf-8")
    run_id = add_running(log)
    a = app(None)

    async def body(pilot: Any) -> None:
        await pilot.press("2")
        await until(pilot, lambda: a.progress is not None)
        assert a.followed_run == run_id
        progress = text_of(a.screen.query_one("#progress", Static))
        assert f"run {run_id} demo-cpu-zero3" in progress and "step 5/20" in progress
        logw = a.screen.query_one("#log")
        await until(pilot, lambda: logw.line_count >= 2)
        with log.open("a", encoding="utf-8") as f:
            f.write("step 6 loss 1.4\n")
        await until(pilot, lambda: any("step 6" in ln for ln in logw.lines))

    drive(a, body)


def test_runs_history_opens_a_record_with_log_and_failure_snapshot(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    ids = seeded(tmp_path)
    a = app(None)

    async def body(pilot: Any) -> None:
        await pilot.press("3")
        table = a.screen.query_one("#runs", DataTable)
        await until(pilot, lambda: table.row_count == 4)
        assert _rows(table)[0] == str(ids["demo"])  # newest first
        cells = [str(c) for c in table.get_row(str(ids["oom"]))]
        assert "OOM" in cells and "1m35s" in cells and "64.0/66.1" in cells
        table.move_cursor(row=_rows(table).index(str(ids["oom"])))
        await pilot.press("enter")
        await until(pilot, lambda: getattr(a.screen, "detail", None) is not None)
        assert "EL0004" in text_of(a.screen.query_one("#detail-fields", Static))
        assert "card snapshot at failure" in text_of(a.screen.query_one("#detail-failure", Static))
        peaks = text_of(a.screen.query_one("#detail-peaks", Static))
        assert "predicted 66.1 GiB" in peaks and "64.0/64.0 GiB" in peaks
        assert any("out of memory" in ln for ln in a.screen.query_one("#detail-log", Log).lines)
        await pilot.press("escape")
        assert a.screen.__class__.__name__ == "RunsScreen"

    drive(a, body)


def test_compare_marked_runs_diff_pivot_and_export() -> None:
    ids = seeded()
    a = app(None)

    async def body(pilot: Any) -> None:
        await pilot.press("3")
        table = a.screen.query_one("#runs", DataTable)
        await until(pilot, lambda: table.row_count == 4)
        for rid in (ids["z0"], ids["z3"], ids["oom"]):
            table.move_cursor(row=_rows(table).index(str(rid)))
            await pilot.press("space")
        await pilot.press("c")
        await until(pilot, lambda: a.screen.__class__.__name__ == "CompareScreen")
        cmp = a.screen.query_one("#compare", DataTable)
        await until(pilot, lambda: cmp.row_count == 3)
        all_cols = len(cmp.columns)
        await pilot.press("d")
        await until(pilot, lambda: 0 < len(cmp.columns) < all_cols)
        headers = [str(c.label) for c in cmp.columns.values()]
        assert "ZeRO stage" in headers and "cards" not in headers  # all three ran on 8 cards
        await pilot.press("p")
        await until(pilot, lambda: cmp.row_count == 2)  # model x zero_stage: 7B and 14B
        await pilot.press("e")
        await until(pilot, lambda: a.screen.__class__.__name__ == "ExportDialog")
        await pilot.press("down", "enter")  # csv
        out = paths.home() / "exports"
        await until(pilot, lambda: out.exists() and any(out.glob("*.csv")))
        text = next(out.glob("*.csv")).read_text(encoding="utf-8-sig")
        assert "Qwen2.5-7B" in text and "Qwen2.5-14B" in text

    drive(a, body, size=(120, 40))


def test_quitting_never_stops_a_run(tmp_path: Path) -> None:
    from .tui_support import add_running

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        add_running(tmp_path / "run.log", pgid=os.getpgid(proc.pid))
        a = app(None)

        async def body(pilot: Any) -> None:
            await until(pilot, lambda: a.active_runs)
            await pilot.press("q", "q")  # asks, and q again quits

        drive(a, body)
        time.sleep(0.2)
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


def test_no_color_is_respected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    assert app(None).no_color
    monkeypatch.delenv("NO_COLOR")
    assert not app(None).no_color


def test_launch_from_catalog_watch_and_stop() -> None:
    from .tui_support import TUI_RECIPES, far_run_ids

    far_run_ids()
    a = app(None, extra=[TUI_RECIPES], watch_interval=0.2)

    async def body(pilot: Any) -> None:
        await until(pilot, lambda: catalog_loaded(a))
        table = a.screen.query_one("#catalog", DataTable)
        table.move_cursor(row=_rows(table).index("r:sleeper"))
        await pilot.press("l")  # asks first: the recipe and where it runs
        await until(pilot, lambda: getattr(a.screen, "ready", False))
        await pilot.press("y")
        await until(pilot, lambda: a.current_mode == "live" and a.progress is not None, timeout=30)
        await until(pilot, lambda: a.progress.run.status == "running", timeout=30)
        run_id = a.progress.run.id
        logw = a.screen.query_one("#log")
        await until(pilot, lambda: any("sleeping" in ln for ln in logw.lines), timeout=30)
        await until(pilot, lambda: any(r.id == run_id for r in a.active_runs))
        await pilot.press("s")  # asks first, with the run's name and age
        assert a.screen.__class__.__name__ == "ConfirmScreen"
        assert a.screen.question.startswith(f"stop run {run_id} sleeper")
        await pilot.press("enter")
        await until(pilot, lambda: a.progress.run.status == "finished", timeout=60)
        assert a.progress.run.outcome == "killed"
        await pilot.press("3")
        runs = a.screen.query_one("#runs", DataTable)
        await until(pilot, lambda: str(run_id) in _rows(runs))
        assert "killed" in [str(c) for c in runs.get_row(str(run_id))]

    drive(a, body)


def test_edit_opens_the_editor_then_revalidates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    user = tmp_path / "mine"
    user.mkdir()
    shutil.copy(paths.shipped_recipes_dir() / "demo-cpu-zero3.toml", user / "mine.toml")
    text = (user / "mine.toml").read_text(encoding="utf-8").replace('"demo-cpu-zero3"', '"mine"')
    (user / "mine.toml").write_text(text, encoding="utf-8")
    # The "editor" breaks the recipe the way a typo would.
    monkeypatch.setenv("EDITOR", f"{sys.executable} -c \"import sys,pathlib; p=pathlib.Path(sys.argv[1]); "
                       f"p.write_text(p.read_text().replace('stage = 3', 'stage = 4'))\"")
    a = app(None, extra=[user])

    async def body(pilot: Any) -> None:
        await until(pilot, lambda: catalog_loaded(a))
        table = a.screen.query_one("#catalog", DataTable)
        table.move_cursor(row=_rows(table).index("r:mine"))
        await pilot.press("E")  # Shift+E: a lower-case word typed by mistake never opens the editor
        await until(pilot, lambda: "r:mine" not in _rows(table) and a.screen.bad)
        problems = text_of(a.screen.query_one("#problems", Static))
        assert "mine.toml" in problems and "zero.stage" in problems

    drive(a, body)


def test_queue_adds_the_recipe_for_the_runner() -> None:
    from .tui_support import store

    a = app(None)

    async def body(pilot: Any) -> None:
        await until(pilot, lambda: catalog_loaded(a))
        table = a.screen.query_one("#catalog", DataTable)
        table.move_cursor(row=_rows(table).index("r:demo-cpu-zero2"))
        await pilot.press("a")  # asks first, like a launch: a running runner would start it
        await until(pilot, lambda: getattr(a.screen, "ready", False))
        await pilot.press("y")

        def queued() -> list[Any]:
            return store().queue_items(states=["pending"])

        await until(pilot, queued)
        item = queued()[0]
        assert item.recipe_ref.endswith("demo-cpu-zero2.toml") and item.recipe_hash

    drive(a, body)


def test_catalog_columns_fit_their_names_at_80x24() -> None:
    """The app as `zerodeck` starts it (default sources, catalog filled by a worker): every recipe
    name is shown whole at 80 columns. In a real terminal, auto-sized columns refilled from the
    worker kept their header widths ("demo-c"); the catalog now sets each width from its cells."""
    from zerodeck.tui.app import make_app

    a = make_app()

    async def body(pilot: Any) -> None:
        await until(pilot, lambda: catalog_loaded(a))
        await pilot.pause(0.3)
        table = a.screen.query_one("#catalog", DataTable)
        cols = {c.label.plain: c for c in table.columns.values()}
        assert cols["recipe"].width >= len("demo-cpu-zero0") and not cols["recipe"].auto_width
        assert cols["model"].width >= len("zerodeck-tiny")
        shot = a.export_screenshot()
        assert "demo-cpu-zero0" in shot and "qwen2.5-14b-lora" in shot

    drive(a, body, size=(80, 24))
