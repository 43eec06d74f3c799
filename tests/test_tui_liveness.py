"""The live view is a watcher too (issue 11): when the supervisor of the run it follows dies, the run's
record is made right within seconds, from what the log proves. Real supervisor, real job, real kill."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from zerodeck.core.launch import api
from zerodeck.core.recipe import load_recipe_file

from tests.launch_helpers import command_recipe, home_store, wait_for
from tests.test_liveness import kill_tagged, steps_program
from tests.tui_support import app, drive, until


def test_live_view_records_a_run_whose_supervisor_died(tmp_path: Path) -> None:
    recipe_path = command_recipe(tmp_path, steps_program(total=3, every=0.1, hang_after=600))
    store = home_store()
    run_id = api.start_run(store, load_recipe_file(recipe_path), recipe_path, detach=True)
    run = wait_for(lambda: (r := store.run(run_id)) is not None and r.status == "running" and r, 60, poll=0.1)
    wait_for(lambda: '"zerodeck": "done"' in Path(run.log_path).read_text(), 30, poll=0.1)
    a = app(source=None, reconcile=True)
    outcome: dict[str, Any] = {}

    async def body(pilot: Any) -> None:
        a.follow(run_id)
        await pilot.press("2")
        await pilot.pause(0.5)
        os.kill(run.supervisor_pid, signal.SIGKILL)
        kill_tagged(run.workdir)
        killed_at = time.monotonic()
        await until(pilot, lambda: (r := store.run(run_id)) is not None and r.finished, timeout=15)
        outcome["took"] = time.monotonic() - killed_at

    drive(a, body)
    final = store.run(run_id)
    assert final is not None and (final.outcome, final.steps_done) == ("succeeded", 3)
    assert outcome["took"] < 10
