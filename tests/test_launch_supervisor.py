"""The supervisor with real processes but no training: the `command` backend running small Python
programs that print the builtin trainer's JSON lines, flake like gloo, or hide a child in another
session. Fast, so the supervisor's behaviour is covered without DeepSpeed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.launch_helpers import command_recipe, run_row, wait_for

FLAKE = ("RuntimeError: [/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:144] "
         "Gloo connectFullMesh failed with Connection refused")


STEPS = """
    import json, sys, time
    for s in range(1, 6):
        print(json.dumps({"zerodeck": "step", "step": s, "total_steps": 5, "loss": 6.0 - s / 2, "lr": 0.001,
                          "samples_per_s": 40.0, "tokens_per_s": 2560.0, "peak_mem_mb": 200.0, "rank": 0,
                          "t": s * 0.1}), flush=True)
    print(json.dumps({"zerodeck": "done", "steps": 5, "train_runtime": 0.5, "train_loss": 4.5,
                      "samples_per_s": 40.0, "tokens_per_s": 2560.0}), flush=True)
"""


def test_supervised_command_records_metrics_argv_env_and_success(cli, tmp_path: Path) -> None:
    code, out, err = cli("run", str(command_recipe(tmp_path, STEPS)), "--json")
    assert code == 0, err
    (run,) = json.loads(out)
    assert run["outcome"] == "succeeded" and run["exit_code"] == 0
    assert run["steps_done"] == 5 and run["final_loss"] == 3.5 and run["tokens_per_s"] == 2560.0
    code, out, _ = cli("show", str(run["id"]), "--json")
    detail = json.loads(out)
    assert [p["step"] for p in detail["metrics"]] == [1, 2, 3, 4, 5]
    assert detail["argv"][1].endswith("prog.py") and detail["argv"][2] == detail["workdir"]
    assert detail["env"]["ZERODECK_RUN_ID"] == str(run["id"]) and detail["status"] == "finished"
    assert detail["summary"]["host"]["hostname"]
    log = Path(detail["log_path"]).read_text()
    assert '"zerodeck": "done"' in log and "finished: succeeded" in log
    code, out, _ = cli("logs", str(run["id"]))
    assert code == 0 and '"zerodeck": "done"' in out


def test_transient_start_failure_is_retried_and_recorded(cli, tmp_path: Path) -> None:
    program = f"""
    import sys
    from pathlib import Path
    marker = Path(sys.argv[1]) / "tried"
    if not marker.exists():
        marker.write_text("1")
        print({FLAKE!r}, flush=True)
        sys.exit(1)
    print("second attempt fine", flush=True)
    """
    code, out, err = cli("run", str(command_recipe(tmp_path, program, retries=1)), "--json")
    assert code == 0, err
    (run,) = json.loads(out)
    assert run["outcome"] == "succeeded" and run["attempts"] == 2
    log = run_row(run["id"]).attempts_log
    assert len(log) == 1 and log[0]["exit_code"] == 1 and log[0]["retried"]


def test_transient_failure_without_retries_is_comm_error(cli, tmp_path: Path) -> None:
    program = f"""
    import sys
    print({FLAKE!r}, flush=True)
    sys.exit(1)
    """
    code, out, _ = cli("run", str(command_recipe(tmp_path, program)), "--json")
    (run,) = json.loads(out)
    assert code == 1 and run["outcome"] == "comm_error" and run["attempts"] == 1


def test_stop_reaches_a_child_in_another_session(cli, tmp_path: Path) -> None:
    # Like torchrun's ranks: a child started with start_new_session, so killpg of the launcher misses it.
    program = """
    import subprocess, sys, time
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    print("started", flush=True)
    time.sleep(600)
    """
    from zerodeck.core.launch.procs import tagged_pids

    code, out, err = cli("run", "--detach", str(command_recipe(tmp_path, program)))
    assert code == 0, err
    run_id = int(out)
    wait_for(lambda: len(tagged_pids(run_row(run_id).workdir)) == 2, 60)
    pids = tagged_pids(run_row(run_id).workdir)
    sessions = {p: os.getsid(p) for p in pids}
    assert len(set(sessions.values())) == 2
    code, out, err = cli("stop", str(run_id))
    assert code == 0, err
    assert "killed" in err
    row = run_row(run_id)
    assert row.outcome == "killed" and row.status == "finished"
    assert tagged_pids(row.workdir) == set()


def test_llamafactory_output_dir_files_feed_the_summary(tmp_path: Path) -> None:
    import shutil

    from zerodeck.core.launch.outcome_bridge import llamafactory_results

    logs = Path(__file__).parent / "fixtures" / "logs"
    shutil.copy(logs / "run_lf095_cpu_trainer_log.jsonl", tmp_path / "trainer_log.jsonl")
    shutil.copy(logs / "run_lf095_cpu_train_results.json", tmp_path / "train_results.json")
    summary, points = llamafactory_results(tmp_path)
    results = json.loads((tmp_path / "train_results.json").read_text())
    assert summary["train_runtime_s"] == results["train_runtime"]
    assert points and all(p.get("loss") is not None for p in points)
    last = json.loads((tmp_path / "trainer_log.jsonl").read_text().splitlines()[-1])
    assert summary["steps_done"] == last["current_steps"]
    assert llamafactory_results(tmp_path / "none") == ({}, [])
