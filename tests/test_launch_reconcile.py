"""Runs whose supervisor vanished: re-adopted while their processes live, else recorded as their log says."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.launch_helpers import orphan_run, run_row, wait_for

DONE = json.dumps({"zerodeck": "done", "steps": 3, "train_runtime": 1.0, "train_loss": 4.0,
                   "samples_per_s": 1.0, "tokens_per_s": 64.0})


def test_run_without_supervisor_or_processes_is_recorded_as_its_log_says(cli, zd_home: Path) -> None:
    run_id = orphan_run(zd_home, "step 1\n[rank1]: RuntimeError: DefaultCPUAllocator: can't allocate memory\n")
    code, out, err = cli("runs", "--json")
    assert code == 0 and f"run {run_id}: supervisor was gone; recorded oom from its log" in err
    (run,) = json.loads(out)
    assert run["outcome"] == "oom" and run["status"] == "finished"
    assert "can't allocate memory" in run["reason"]
    # A second look changes nothing.
    code, _, err = cli("runs")
    assert err == ""


def test_run_whose_log_tells_nothing_is_marked_lost(cli, zd_home: Path) -> None:
    run_id = orphan_run(zd_home, "loading the model\n")
    code, out, err = cli("runs", "--json")
    assert code == 0 and f"run {run_id}: supervisor was gone; marked lost" in err
    (run,) = json.loads(out)
    assert run["outcome"] == "lost" and "last line: loading the model" in run["reason"]


def test_run_whose_processes_live_is_readopted_and_finished(cli, zd_home: Path) -> None:
    run_id = orphan_run(zd_home, "")
    row = run_row(run_id)
    # A rank that outlived its supervisor: tagged, writes the done line to the log, then exits.
    code = (f"import time; time.sleep(5); open({row.log_path!r}, 'a').write({DONE!r} + '\\n')")
    env = {**os.environ, "ZERODECK_RUN_TAG": row.workdir}
    rank = subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True)
    try:
        code_, _, err = cli("runs")
        assert code_ == 0 and f"run {run_id}: supervisor was gone; re-adopted" in err
        assert run_row(run_id).status == "running"
        final = wait_for(lambda: (r := run_row(run_id)).status == "finished" and r, 60)
    finally:
        rank.wait(30)
    assert final.outcome == "succeeded" and final.steps_done == 3
    assert final.exit_code is None and "exit status" not in (final.reason or "")
    assert "re-adopted" in Path(row.log_path).read_text()
    # The adopter runs telemetry too: the rank it watched has a recorded peak.
    from tests.launch_helpers import home_store

    peaks = [p for p in home_store().card_peaks(run_id) if p.source == "cpu"]
    assert peaks and all(p.peak_mb for p in peaks)
