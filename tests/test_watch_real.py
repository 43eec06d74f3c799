"""Issue 18 with the real built-in trainer (torch + DeepSpeed on CPU ranks): a run that hangs is
marked stalled and stopped; a killed run resumes from its checkpoint. Slow: each trains a tiny model."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from zerodeck.core.launch import procs

from tests.launch_helpers import demo_copy, home_store

pytestmark = pytest.mark.slow

SHORT_WATCH = """
[watch]
stall_floor_s = 4
stall_factor = 2
stall_startup_s = 300
on_stall = "stop"
stall_grace_s = 1
"""


def test_a_hanging_rank_is_marked_stalled_and_stopped_with_the_reason(cli, tmp_path: Path) -> None:
    env = 'env = { ZERODECK_TEST_SLEEP_AT_STEP = "6", ZERODECK_TEST_SLEEP_S = "300" }\n'
    recipe = demo_copy(tmp_path, 0, max_steps="40", __extra__=env + SHORT_WATCH)
    t0 = time.monotonic()
    code, out, err = cli("run", str(recipe), "--json")
    took = time.monotonic() - t0
    (run,) = json.loads(out)
    assert code == 1 and took < 200, err  # stopped long before rank 0 wakes up
    # Two ranks that stop stepping together wait in a collective: a comm error, with the step it hung at.
    assert run["outcome"] == "comm_error" and re.fullmatch(r"stalled for [\d.]+ min at step 5", run["reason"])
    events = home_store().events(run["id"])
    stalled = [e for e in events if e.kind == "stalled"]
    assert len(stalled) == 1 and stalled[0].detail["step"] == 5
    # Marked within the configured time: the 4 s floor plus at most two one-second watch ticks.
    assert 4.0 <= stalled[0].detail["idle_s"] <= 6.5
    assert stalled[0].detail["cards"], "the stall records the ranks' state"
    assert not procs.tagged_pids(str(Path(home_store().run(run["id"]).workdir)))


def test_a_run_killed_at_step_30_resumes_from_its_step_30_checkpoint(cli, tmp_path: Path) -> None:
    launch = ('options = { save_steps = 10 }\n'
              'env = { ZERODECK_TEST_KILL_AT_STEP = "30" }\n')
    recipe = demo_copy(tmp_path, 0, max_steps="50", __extra__=launch)
    code, out, err = cli("run", str(recipe), "--json")
    (first,) = json.loads(out)
    assert code == 1 and first["steps_done"] == 30, err
    out_dir = Path(first["log_path"]).parent / "output"
    assert sorted(p.name for p in out_dir.iterdir()) == ["checkpoint-10", "checkpoint-20", "checkpoint-30"]
    code, out, err = cli("resume", str(first["id"]), "--json")
    second = json.loads(out)
    assert code == 0 and second["outcome"] == "succeeded", err
    store = home_store()
    resumed = store.metrics(second["id"])
    assert [p.step for p in resumed] == list(range(31, 51))  # no step at or before the checkpoint again
    before = store.metrics(first["id"])
    # The curve continues: the first resumed loss is near the last one before the kill, far below the start.
    assert abs(resumed[0].loss - before[-1].loss) < 0.5 * (before[0].loss - before[-1].loss)
    assert [p.step for p in store.chain_metrics(second["id"])] == list(range(1, 51))
    assert store.run(second["id"]).resumed_from == str(out_dir / "checkpoint-30")


def test_an_injected_comm_error_is_resumed_automatically_from_the_checkpoint(cli, tmp_path: Path) -> None:
    from tests.launch_helpers import wait_for

    launch = ('retries = 1\nresume = true\noptions = { save_steps = 10 }\n'
              'env = { ZERODECK_TEST_COMM_ERROR_AT_STEP = "20" }\n')
    recipe = demo_copy(tmp_path, 0, max_steps="30", __extra__=launch)
    code, out, err = cli("run", str(recipe), "--json")
    (first,) = json.loads(out)
    assert code == 1 and first["outcome"] == "comm_error" and first["steps_done"] == 20, err
    store = home_store()
    child = wait_for(lambda: next((r for r in store.runs() if r.parent_id == first["id"]), None), 60)
    done = wait_for(lambda: store.run(child.id).finished and store.run(child.id), 300)
    assert done.outcome == "succeeded" and done.resumed_from.endswith("checkpoint-20")
    assert [p.step for p in store.metrics(child.id)] == list(range(21, 31))
    assert [e.kind for e in store.events(first["id"])] == ["resumed_as"]
