"""Real DeepSpeed runs of the built-in trainer on CPU (2 ranks, gloo), end to end through the CLI.

Slow: each run starts torchrun, two ranks and DeepSpeed (about 15 s on an idle 2-core machine).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.launch_helpers import demo_copy, run_row, wait_for

pytestmark = pytest.mark.slow
ZD = str(Path(sys.executable).with_name("zerodeck"))


def _metrics(run_id: int) -> list:
    from tests.launch_helpers import home_store

    return home_store().metrics(run_id)


def test_demo_recipes_zero0_2_3_succeed_with_loss_curve_and_throughput(cli) -> None:
    code, out, err = cli("run", "demo-cpu-zero0", "demo-cpu-zero2", "demo-cpu-zero3", "--json")
    assert code == 0, err
    runs = json.loads(out)
    assert [r["name"] for r in runs] == ["demo-cpu-zero0", "demo-cpu-zero2", "demo-cpu-zero3"]
    stages = []
    for r in runs:
        assert r["outcome"] == "succeeded", r
        assert r["steps_done"] == 20 and r["steps_total"] == 20
        assert r["tokens_per_s"] > 0 and r["samples_per_s"] > 0 and r["train_runtime_s"] > 0
        points = _metrics(r["id"])
        assert [p.step for p in points] == list(range(1, 21))
        assert points[-1].loss < points[0].loss  # it learned something
        row = run_row(r["id"])
        stages.append(json.loads(row.rendered["ds_config.json"])["zero_optimization"]["stage"])
        env = row.env
        assert env["DS_ACCELERATOR"] == "cpu" and env["ZERODECK_RUN_ID"] == str(r["id"])
        assert row.versions["deepspeed"]
        assert row.master_port and str(row.master_port) in row.argv
        assert row.baseline, "telemetry baseline recorded"
    assert stages == [0, 2, 3]
    # ZeRO-3 partitions the parameters: its ranks hold less than ZeRO-0's full replicas... but on a
    # 70k-parameter model the difference is noise, so what is compared is what was recorded.
    assert len({run_row(r["id"]).recipe_hash for r in runs}) == 3


def test_detached_run_survives_its_terminal(tmp_path: Path) -> None:
    recipe = demo_copy(tmp_path, 0)
    out = tmp_path / "ids.txt"
    # A stand-in for an SSH session: its own session and process group, then hung up and killed.
    shell = subprocess.Popen(["bash", "-c", f'"{ZD}" run --detach "{recipe}" > "{out}"; sleep 600'],
                             start_new_session=True)
    try:
        run_id = int(wait_for(lambda: out.exists() and out.read_text().strip(), 60))
        wait_for(lambda: run_row(run_id).status == "running", 120)
        os.killpg(shell.pid, signal.SIGHUP)
        os.killpg(shell.pid, signal.SIGKILL)
    finally:
        shell.wait(10)
    run = wait_for(lambda: (r := run_row(run_id)).status == "finished" and r, 300)
    assert run.outcome == "succeeded", run.reason
    assert run.steps_done == 20 and len(_metrics(run_id)) == 20


def test_stop_leaves_no_process_of_the_run(cli, tmp_path: Path) -> None:
    from zerodeck.core.launch.procs import tagged_pids

    recipe = demo_copy(tmp_path, 0, max_steps="100000")
    code, out, err = cli("run", "--detach", str(recipe))
    assert code == 0, err
    run_id = int(out.strip())
    wait_for(lambda: (run_row(run_id).steps_done or 0) >= 2, 180)
    tag = run_row(run_id).workdir
    pids = tagged_pids(tag)
    assert len(pids) >= 3  # torchrun and its two ranks (in sessions of their own)
    code, out, err = cli("stop", str(run_id))
    assert code == 0, err
    run = run_row(run_id)
    assert run.status == "finished" and run.outcome == "killed"
    assert tagged_pids(tag) == set()
    assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


def test_address_space_limit_is_recorded_oom(cli, tmp_path: Path) -> None:
    recipe = demo_copy(tmp_path, 0, seq_len="1024", micro_batch="16",
                       __extra__="options = { rlimit_as_extra_mb = 64 }\n")
    code, out, err = cli("run", str(recipe), "--json")
    assert code == 1
    (run,) = json.loads(out)
    assert run["outcome"] == "oom", run
    row = run_row(run["id"])
    assert row.outcome_device == "cpu" and "allocate" in (row.outcome_excerpt or row.reason or "")
