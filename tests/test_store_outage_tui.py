"""The TUI while its store cannot be reached: one line saying so, the runs kept as last seen.

The store blinks through the same seam as test_spool.py (every statement on its real engine fails
as an unreachable server's would); keys go one at a time with pauses, then in a burst.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .test_spool import Blink
from .tui_support import add_running, app, drive, store, until


def messages(a: Any) -> list[str]:
    return [n.message for n in a._notifications]


def test_tui_says_store_unreachable_in_one_line_and_keeps_the_runs(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_text("step 1\n")
    run_id = add_running(log)
    a = app()
    blink = Blink(store())

    async def body(pilot: Any) -> None:
        await until(pilot, lambda: [r.id for r in a.active_runs] == [run_id])
        blink.flag = True
        await until(pilot, lambda: any("store unreachable" in m for m in messages(a)))
        said = [m for m in messages(a) if "store unreachable" in m]
        assert len(said) == 1 and "\n" not in said[0] and "Traceback" not in said[0]
        assert said[0].startswith("store unreachable: server/db (connection refused); ")
        await pilot.pause(0.3)  # many polls later: said once, and the run is still shown
        assert len([m for m in messages(a) if "store unreachable" in m]) == 1
        assert [r.id for r in a.active_runs] == [run_id]
        for key in ("3", "2", "3"):  # the Runs list cannot load: one line, not a repr or a traceback
            await pilot.press(key)
            await pilot.pause(0.2)
        await until(pilot, lambda: len([m for m in messages(a) if "store unreachable" in m]) >= 2)
        assert all("\n" not in m and "StoreUnreachable(" not in m for m in messages(a))
        await pilot.press("2", "3", "2")  # a burst
        await pilot.pause(0.2)
        blink.flag = False
        await until(pilot, lambda: "store reachable again" in messages(a))
        assert [r.id for r in a.active_runs] == [run_id]

    try:
        drive(a, body, size=(120, 40))
    finally:
        blink.remove()
