"""The key model, tried as a person types: one key, a pause, the next key (and as a burst, as a paste
over SSH arrives). Every key outside a filter box is a command; none starts or stops anything alone:
launch, queue and stop ask first and are answered in one more key (Enter / y, or Esc / n)."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text
from textual.widgets import DataTable, Static
from zerodeck.tui.screens.confirm import (
    ConfirmScreen,
    QuitScreen,
    age_text,
    device_ids,
    launch_details,
    stop_question,
)
from zerodeck.tui.services import Services
from zerodeck.tui.widgets.filter import FilterInput

from .tui_support import NOW, TUI_RECIPES, add_running, app, catalog_loaded, drive, seeded, store, text_of, until

HUMAN = 0.15  # seconds between keys: a person typing, so every key is handled before the next


def _rows(table: DataTable) -> list[str]:
    return [str(k.value) for k in table.rows]


async def typed(pilot: Any, keys: str | list[str]) -> None:
    for k in keys:
        await pilot.press(k)
        await pilot.pause(HUMAN)


def _screen_name(a: Any) -> str:
    return a.screen.__class__.__name__


def test_typing_a_name_without_slash_launches_nothing_and_quits_nothing() -> None:
    a = app()

    async def body(pilot: Any) -> None:
        await until(pilot, lambda: catalog_loaded(a))
        table = a.screen.query_one("#catalog", DataTable)
        table.move_cursor(row=_rows(table).index("r:demo-cpu-zero3"))
        await typed(pilot, "lora")  # `l` is Launch: it asks, and the rest of the word goes to the question
        assert isinstance(a.screen, ConfirmScreen)
        assert len([s for s in a.screen_stack if isinstance(s, ConfirmScreen)]) == 1
        await until(pilot, lambda: a.screen.ready)
        await typed(pilot, "ora")  # still nothing: only Enter / y go ahead
        assert isinstance(a.screen, ConfirmScreen)
        await typed(pilot, ["escape"])
        assert _screen_name(a) == "CatalogScreen" and a.screen.focused is table
        await pilot.pause(0.5)
        assert store().count_runs() == 0 and not store().queue_items()
        assert a.is_running

    drive(a, body)


def test_after_slash_every_key_is_text_q_and_digits_included() -> None:
    a = app()

    async def body(pilot: Any) -> None:
        await until(pilot, lambda: catalog_loaded(a))
        screen = a.screen
        box = screen.query_one("#filter", FilterInput)
        table = screen.query_one("#catalog", DataTable)
        await typed(pilot, ["slash"])
        assert screen.focused is box
        await typed(pilot, "qwen2.5-72")  # q is Quit and digits switch screens, outside the box
        assert box.value == "qwen2.5-72"
        assert a.is_running and a.screen is screen and a.current_mode == "catalog"
        assert all(k.startswith(("g:qwen2.5-72b", "r:qwen2.5-72b")) for k in _rows(table)) and _rows(table)
        # In the box the footer offers the box's keys, not the commands the letters would be.
        keys = a.screen.active_bindings
        assert "l" not in keys and "q" not in keys and "1" not in keys
        assert keys["enter"].binding.description == "Table" and keys["escape"].binding.description == "Clear filter"
        await typed(pilot, ["down"])  # Down leaves the box for the table, keeping the filter
        assert screen.focused is table and box.value == "qwen2.5-72"
        await typed(pilot, ["down"])
        assert table.cursor_row == 1
        keys = a.screen.active_bindings
        assert keys["slash"].binding.description == "Filter" and keys["escape"].binding.description == "Clear"
        await typed(pilot, ["escape"])  # in the table, Esc clears the filter
        assert box.value == "" and "r:demo-cpu-zero3" in _rows(table)
        assert "escape" not in a.screen.active_bindings  # nothing to clear: not offered
        await typed(pilot, ["slash", "z", "3", "escape"])  # Esc in the box clears and leaves it
        assert box.value == "" and screen.focused is table
        await typed(pilot, ["slash", *"zero3", "enter"])  # Enter leaves it, keeping the filter
        assert screen.focused is table and _rows(table) == ["r:demo-cpu-zero3"]
        assert store().count_runs() == 0

    drive(a, body)


def test_a_burst_typed_into_the_filter_stays_text() -> None:
    a = app()

    async def body(pilot: Any) -> None:
        await until(pilot, lambda: catalog_loaded(a))
        screen = a.screen
        await pilot.press("slash", *"lora", "3", "q")
        assert screen.query_one("#filter", FilterInput).value == "lora3q"
        assert a.is_running and a.screen is screen and store().count_runs() == 0

    drive(a, body)


def test_a_burst_of_command_letters_opens_one_question_and_starts_nothing() -> None:
    a = app()

    async def body(pilot: Any) -> None:
        await until(pilot, lambda: catalog_loaded(a))
        table = a.screen.query_one("#catalog", DataTable)
        table.move_cursor(row=_rows(table).index("r:demo-cpu-zero2"))
        await pilot.press(*"lora")
        await pilot.pause(0.3)
        assert [type(s).__name__ for s in a.screen_stack][-1] == "ConfirmScreen"
        assert sum(isinstance(s, ConfirmScreen) for s in a.screen_stack) == 1
        await pilot.press("n")
        await pilot.pause(0.3)
        assert store().count_runs() == 0 and not store().queue_items()

    drive(a, body)


def test_q_asks_and_q_again_quits_ctrl_q_at_once() -> None:
    a = app()

    async def body(pilot: Any) -> None:
        await until(pilot, lambda: catalog_loaded(a))
        await typed(pilot, "q")
        assert isinstance(a.screen, QuitScreen) and a.is_running
        await typed(pilot, ["enter", "y", "e", "1"])  # neither answers nor reaches the screen behind
        assert isinstance(a.screen, QuitScreen) and a.is_running and a.current_mode == "catalog"
        await typed(pilot, ["escape"])
        assert _screen_name(a) == "CatalogScreen" and a.is_running
        await typed(pilot, "qq")

    drive(a, body)
    assert a.return_code == 0

    b = app()

    async def at_once(pilot: Any) -> None:
        await until(pilot, lambda: catalog_loaded(b))
        await pilot.press("ctrl+q")

    drive(b, at_once)
    assert b.return_code == 0


STRAY_WORDS = ("qwen", "lora", "72")


def test_stray_words_without_slash_start_stop_quit_or_edit_nothing(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Recipe-like words typed where the keys are commands, on Catalog and on Runs (with a run going,
    the row under the cursor), one key at a time with 0.2 s pauses and as a burst: no launch, no
    queue, no stop, no quit and no editor."""
    edited = tmp_path / "edited"
    monkeypatch.setenv("EDITOR", f"{sys.executable} -c \"import pathlib; pathlib.Path({str(edited)!r}).touch()\"")
    monkeypatch.delenv("VISUAL", raising=False)
    run_id = add_running(tmp_path / "run.log")
    a = app()

    async def back_to(pilot: Any, mode: str) -> None:
        while len(a.screen_stack) > 1:  # a question or a pushed screen a letter opened
            await typed(pilot, ["escape"])
        await typed(pilot, [{"catalog": "1", "runs": "3"}[mode]])
        assert a.current_mode == mode and len(a.screen_stack) == 1

    async def body(pilot: Any) -> None:
        await until(pilot, lambda: catalog_loaded(a))
        for mode in ("catalog", "runs"):
            for word in STRAY_WORDS:
                for burst in (False, True):
                    await back_to(pilot, mode)
                    if mode == "runs":
                        await until(pilot, lambda: a.screen.query_one("#runs", DataTable).row_count == 1)
                    if burst:
                        await pilot.press(*word)
                        await pilot.pause(0.3)
                    else:
                        for k in word:
                            await pilot.press(k)
                            await pilot.pause(0.2)
                    assert a.is_running, (mode, word, burst)  # `qwen`: q asked, w e swallowed, n said stay
                    if word == "lora" and mode == "catalog":
                        assert isinstance(a.screen, ConfirmScreen), (mode, word, burst)
        await back_to(pilot, "catalog")
        await pilot.pause(0.5)
        assert a.is_running
        s = store()
        assert s.count_runs() == 1 and not s.queue_items()
        run = s.run(run_id)
        assert run is not None and run.status == "running" and not s.stop_requested(run_id)
        assert not edited.exists()

    drive(a, body)


def test_queue_asks_first() -> None:
    a = app()

    async def body(pilot: Any) -> None:
        await until(pilot, lambda: catalog_loaded(a))
        table = a.screen.query_one("#catalog", DataTable)
        table.move_cursor(row=_rows(table).index("r:demo-cpu-zero2"))
        await typed(pilot, "a")
        assert isinstance(a.screen, ConfirmScreen) and "queue demo-cpu-zero2" in a.screen.question
        await typed(pilot, "n")
        assert not store().queue_items()
        await typed(pilot, "a")
        await until(pilot, lambda: a.screen.ready)
        await typed(pilot, "y")
        await until(pilot, lambda: store().queue_items(states=["pending"]))
        assert store().count_runs() == 0

    drive(a, body)


def test_launch_asks_with_recipe_and_cards_then_stop_asks_on_runs() -> None:
    """A real launch (a process that sleeps): `n` launches nothing, `y` one run; on Runs, `s` then
    `n` keeps it going, `s` then Enter stops it."""
    from .tui_support import far_run_ids

    far_run_ids()
    before = store().count_runs()
    a = app(None, extra=[TUI_RECIPES], watch_interval=0.2)

    async def body(pilot: Any) -> None:
        await until(pilot, lambda: catalog_loaded(a))
        table = a.screen.query_one("#catalog", DataTable)
        table.move_cursor(row=_rows(table).index("r:sleeper"))
        await typed(pilot, "l")
        dialog = a.screen
        assert isinstance(dialog, ConfirmScreen) and dialog.question == "launch sleeper?"
        await until(pilot, lambda: dialog.ready)
        details = text_of(dialog.query_one("#confirm-details", Static))
        assert "sleeper" in details and "command" in details and "1 rank(s) on the CPU" in details
        assert "GiB/card of 4.0" in details
        assert "Enter/y launch" in text_of(dialog.query_one("#confirm-keys", Static))
        await typed(pilot, "n")
        await pilot.pause(0.3)
        assert _screen_name(a) == "CatalogScreen" and store().count_runs() == before
        await typed(pilot, "l")
        await until(pilot, lambda: a.screen.ready)
        await typed(pilot, "y")
        await until(pilot, lambda: store().count_runs() == before + 1, timeout=30)
        await until(pilot, lambda: a.current_mode == "live", timeout=30)
        run_id = max(r.id for r in store().runs(limit=5))
        await until(pilot, lambda: (store().run(run_id).status == "running"
                                    and any(r.id == run_id for r in a.active_runs)), timeout=30)
        await typed(pilot, "3")
        runs = a.screen.query_one("#runs", DataTable)
        await until(pilot, lambda: str(run_id) in _rows(runs))
        runs.move_cursor(row=_rows(runs).index(str(run_id)))
        await typed(pilot, "s")
        assert isinstance(a.screen, ConfirmScreen)
        assert a.screen.question.startswith(f"stop run {run_id} sleeper (running ")
        await typed(pilot, "n")
        await pilot.pause(0.5)
        assert store().run(run_id).status == "running"
        await typed(pilot, ["s", "enter"])
        await until(pilot, lambda: store().run(run_id).finished, timeout=60)
        assert store().run(run_id).outcome == "killed"

    drive(a, body)


def test_going_ahead_waits_for_the_details() -> None:
    """Until the dialog has shown where a launch goes, Enter and y do nothing; a recipe that cannot
    be read leaves only cancelling."""
    import threading

    release = threading.Event()
    answers: list[bool | None] = []
    a = app()

    def slow() -> Text:
        release.wait(10)
        return Text("cards 0-7 (npu)")

    async def body(pilot: Any) -> None:
        await until(pilot, lambda: catalog_loaded(a))
        a.push_screen(ConfirmScreen("launch x?", load=slow), answers.append)
        await pilot.pause(HUMAN)
        await typed(pilot, ["y", "enter"])
        assert isinstance(a.screen, ConfirmScreen) and not answers
        release.set()
        await until(pilot, lambda: a.screen.ready)
        assert "cards 0-7 (npu)" in text_of(a.screen.query_one("#confirm-details", Static))
        await typed(pilot, "y")
        assert answers == [True]

        def broken() -> Text:
            raise FileNotFoundError("recipes/x.toml")

        a.push_screen(ConfirmScreen("launch x?", load=broken), answers.append)
        await until(pilot, lambda: any("FileNotFoundError" in text_of(w) for w in a.screen.query("#confirm-details")))
        await typed(pilot, ["y", "enter"])
        assert isinstance(a.screen, ConfirmScreen) and answers == [True]
        await typed(pilot, "n")
        assert answers == [True, False]

    drive(a, body)


def test_stop_on_runs_asks_with_name_and_age(tmp_path: Path) -> None:
    run_id = add_running(tmp_path / "run.log")
    a = app(None)

    async def body(pilot: Any) -> None:
        await typed(pilot, "3")
        table = a.screen.query_one("#runs", DataTable)
        await until(pilot, lambda: str(run_id) in _rows(table))
        await typed(pilot, "s")
        assert isinstance(a.screen, ConfirmScreen)
        assert a.screen.question == f"stop run {run_id} demo-cpu-zero3 (running 30 s)?"
        await typed(pilot, ["escape"])
        await pilot.pause(0.3)
        assert store().run(run_id).status == "running"
        await typed(pilot, ["s", "y"])
        await until(pilot, lambda: store().run(run_id).finished)
        assert store().run(run_id).outcome == "killed"

    drive(a, body)


def test_stop_on_the_run_record_asks(tmp_path: Path) -> None:
    run_id = add_running(tmp_path / "run.log")
    a = app(None)

    async def body(pilot: Any) -> None:
        await typed(pilot, "3")
        table = a.screen.query_one("#runs", DataTable)
        await until(pilot, lambda: str(run_id) in _rows(table))
        await until(pilot, lambda: a.active_runs)
        await typed(pilot, ["enter"])
        await until(pilot, lambda: getattr(a.screen, "detail", None) is not None)
        await typed(pilot, "s")
        assert isinstance(a.screen, ConfirmScreen) and f"stop run {run_id} demo-cpu-zero3" in a.screen.question
        await typed(pilot, "n")
        assert store().run(run_id).status == "running"

    drive(a, body)


def test_marked_runs_show_a_mark_and_a_style() -> None:
    ids = seeded()
    a = app(None)

    async def body(pilot: Any) -> None:
        await typed(pilot, "3")
        table = a.screen.query_one("#runs", DataTable)
        await until(pilot, lambda: table.row_count == 4)
        table.move_cursor(row=_rows(table).index(str(ids["z3"])))
        await typed(pilot, ["space"])
        row = table.get_row(str(ids["z3"]))
        assert isinstance(row[0], Text) and row[0].plain == "●"
        assert all(isinstance(c, Text) and any("bold" in str(s.style) for s in c.spans) for c in row)
        other = table.get_row(str(ids["z0"]))
        assert str(other[0]).strip() == ""
        assert "● 1 marked" in text_of(a.screen.query_one("#runs-title", Static))
        table.move_cursor(row=_rows(table).index(str(ids["z3"])))
        await typed(pilot, ["space"])  # unmarking restores the plain row
        assert str(table.get_row(str(ids["z3"]))[0]).strip() == ""

    drive(a, body)


def test_wide_tables_keep_their_name_and_hide_columns_at_80() -> None:
    ids = seeded()
    a = app(None)
    a.compare_ids = [ids["z0"], ids["z3"], ids["oom"]]

    async def body(pilot: Any) -> None:
        await typed(pilot, "3")
        runs = a.screen.query_one("#runs", DataTable)
        await until(pilot, lambda: runs.row_count == 4)
        assert runs.fixed_columns == 3
        await typed(pilot, "v")
        assert _screen_name(a) == "ColumnChooser"
        await typed(pilot, ["space", "escape"])  # the first offered column is the outcome
        keys = [str(k.value) for k in runs.columns]
        assert "outcome" not in keys and "recipe" in keys and "loss" in keys
        await typed(pilot, "4")
        cmp = a.screen.query_one("#compare", DataTable)
        await until(pilot, lambda: cmp.row_count == 3)
        assert cmp.fixed_columns == 2  # run, recipe
        n = len(cmp.columns)
        await typed(pilot, ["v", "space", "down", "space", "escape"])
        assert len(cmp.columns) == n - 2
        labels = [c.label.plain for c in cmp.columns.values()]
        assert labels[:2] == ["run", "recipe"]
        await typed(pilot, "e")
        hint = text_of(a.screen.query_one("#export-keys", Static))
        assert "Enter export" in hint and "Esc cancel" in hint
        await typed(pilot, ["escape"])
        await typed(pilot, "1")
        cat = a.screen.query_one("#catalog", DataTable)
        await until(pilot, lambda: catalog_loaded(a))
        assert cat.fixed_columns == 1
        await typed(pilot, ["v", "space", "escape"])  # hides the plan column
        assert [c.label.plain for c in cat.columns.values()][:2] == ["recipe", "GiB/card"]

    drive(a, body, size=(80, 24))


# -- what the questions say --------------------------------------------------------------------------

def test_launch_details_name_the_cards_and_the_plan() -> None:
    services = Services(store())
    text = launch_details(services, "qwen2.5-32b-lora-z3-s80k").plain
    assert "cards 0-7 (npu)" in text and "llamafactory" in text and "qwen2.5-32b-lora-z3-s80k" in text
    assert "GiB/card of 64.0" in text and "fits" in text


def test_stop_question_and_age() -> None:
    run_id = add_running(Path("run.log"))
    run = store().run(run_id)
    assert run is not None
    question, _ = stop_question(run, NOW + timedelta(days=2, hours=3))
    assert question == f"stop run {run_id} demo-cpu-zero3 (running 2 d 03 h)?"
    assert age_text(59) == "59 s" and age_text(3 * 3600 + 5 * 60) == "3 h 05 m" and age_text(None) == "not started"
    assert device_ids([0, 1, 2, 3]) == "0-3" and device_ids([0, 2, 4]) == "0,2,4" and device_ids([5]) == "5"


def test_launch_from_the_plan_screen_asks_too() -> None:
    a = app()

    async def body(pilot: Any) -> None:
        await until(pilot, lambda: catalog_loaded(a))
        table = a.screen.query_one("#catalog", DataTable)
        table.move_cursor(row=_rows(table).index("r:demo-cpu-zero0"))
        await typed(pilot, ["enter"])
        await until(pilot, lambda: _screen_name(a) == "PlanScreen")
        await typed(pilot, "l")
        assert isinstance(a.screen, ConfirmScreen) and a.screen.question == "launch demo-cpu-zero0?"
        await typed(pilot, ["escape"])  # a cancelled launch comes back to the plan it was asked from
        assert _screen_name(a) == "PlanScreen" and store().count_runs() == 0

    drive(a, body)
