"""Real Slurm runs on the one-machine test cluster (tests/slurm_cluster.py), end to end through the CLI.

Two slurmd "nodes" on this host stand in for two servers: a 2-node builtin ZeRO-3 run (one torchrun
rendezvous across both, DS_ACCELERATOR=cpu) succeeds with its loss points and per-node telemetry;
a time limit, a cancellation outside zerodeck and a failing step end as Slurm says; `zerodeck stop`
leaves no job and no process; a job held in the queue shows PENDING with its reason.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import psutil
import pytest

from tests.launch_helpers import demo_copy, home_store, run_row, wait_for
from tests.slurm_cluster import slurm_cluster, slurm_env  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow


def _cluster_table(nodes: int = 2, **extra: str) -> str:
    lines = ["", "[cluster]", 'scheduler = "slurm"', f"nodes = {nodes}", 'network_interface = "lo"']
    lines += [f"{k} = {v}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


def command_job(tmp: Path, argv: list[str], nodes: int = 1, name: str = "slurm-cmd", **extra: str) -> Path:
    path = tmp / f"{name}.toml"
    path.write_text(f'name = "{name}"\n[model]\nname = "zerodeck-tiny"\n[hardware]\ndevice = "cpu"\ncards = 1\n'
                    f'[launch]\nbackend = "command"\nargv = {json.dumps(argv)}\n' + _cluster_table(nodes, **extra))
    return path


def _job(run_id: int):  # noqa: ANN202
    return home_store().slurm_job(run_id)


def _run_processes(run_id: int) -> list[int]:
    """Processes of the run, here and in its job steps (tagged with its run directory)."""
    run_dir = str(home_store().run(run_id).workdir)
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if proc.environ().get("ZERODECK_RUN_TAG") in (run_dir, f"{run_dir}@slurm") and proc.pid != os.getpid():
                found.append(proc.pid)
    return found


def test_two_node_builtin_zero3_run_succeeds_with_points_and_node_telemetry(slurm_env, cli, tmp_path: Path) -> None:  # noqa: F811 - the fixture
    recipe = demo_copy(tmp_path, stage=3, cards="1", max_steps="6")
    recipe.write_text(recipe.read_text() + _cluster_table(2))
    code, out, err = cli("run", str(recipe), "--json")
    assert code == 0, err
    (r,) = json.loads(out)
    row = run_row(r["id"])
    log = Path(row.log_path).read_text()
    assert r["outcome"] == "succeeded", log[-3000:]
    assert [p.step for p in home_store().metrics(r["id"])] == list(range(1, 7))
    job = _job(r["id"])
    assert job.state == "COMPLETED" and job.nodes == 2 and job.cards_per_node == 1
    assert job.node_list == f"{slurm_env.host},zdnode2"
    assert job.queue_wait_s is not None and job.queue_wait_s >= 0 and job.started_at is not None
    # Both nodes joined one rendezvous: node 1's line is in the run log, tagged.
    assert "zerodeck: node 0 of 2" in log and "[node 1] zerodeck: node 1 of 2" in log
    run_dir = Path(row.workdir)
    assert (run_dir / "slurm.sbatch").is_file() and (run_dir / "node.sh").is_file()
    peaks = {(p.source, p.card) for p in home_store().card_peaks(r["id"])}
    assert ("host", slurm_env.host) in peaks and ("host", "zdnode2") in peaks
    cards = {card.split(":")[0] for source, card in peaks if source == "cpu"}
    assert cards == {slurm_env.host, "zdnode2"}, peaks


def test_time_limit_is_killed_time_limit(slurm_env, cli, tmp_path: Path) -> None:  # noqa: F811 - the fixture
    recipe = command_job(tmp_path, ["sleep", "600"], time='"1"')
    code, out, err = cli("run", str(recipe), "--json")
    assert code == 1
    (r,) = json.loads(out)
    assert r["outcome"] == "killed" and "time limit" in r["reason"] and "Slurm TIMEOUT" in r["reason"], r
    assert _job(r["id"]).state == "TIMEOUT"


def test_failing_step_is_failed_from_its_log(slurm_env, cli, tmp_path: Path) -> None:  # noqa: F811 - the fixture
    recipe = command_job(tmp_path, ["bash", "-c", "echo 'RuntimeError: the step broke' >&2; exit 3"])
    code, out, _err = cli("run", str(recipe), "--json")
    assert code == 1
    (r,) = json.loads(out)
    assert r["outcome"] == "failed" and "Slurm FAILED" in r["reason"], r
    job = _job(r["id"])
    assert job.state == "FAILED" and job.exit_code == "3:0"


def test_cancelled_outside_zerodeck_is_killed(slurm_env, cli, tmp_path: Path) -> None:  # noqa: F811 - the fixture
    recipe = command_job(tmp_path, ["sleep", "600"])
    code, out, err = cli("run", str(recipe), "--detach")
    assert code == 0, err
    run_id = int(out.split()[0])
    job = wait_for(lambda: (j := _job(run_id)) and j.state == "RUNNING" and j, 60)
    slurm_env.run(["scancel", job.job_id])
    final = wait_for(lambda: (x := run_row(run_id)).finished and x, 60)
    assert final.outcome == "killed" and "cancelled outside zerodeck" in final.reason, final.reason


def test_stop_leaves_no_job_and_no_process(slurm_env, cli, tmp_path: Path) -> None:  # noqa: F811 - the fixture
    recipe = command_job(tmp_path, ["sleep", "600"], nodes=2)
    code, out, err = cli("run", str(recipe), "--detach")
    assert code == 0, err
    run_id = int(out.split()[0])
    job = wait_for(lambda: (j := _job(run_id)) and j.state == "RUNNING" and j, 60)
    assert wait_for(lambda: len(_run_processes(run_id)) >= 3, 30)  # follower + both nodes' sleeps
    code, out, err = cli("stop", str(run_id), "--json")
    assert code == 0, err
    final = run_row(run_id)
    assert final.outcome == "killed" and "stopped on request" in final.reason and "CANCELLED" in final.reason
    assert job.job_id not in slurm_env.jobs()
    assert wait_for(lambda: not _run_processes(run_id), 15), _run_processes(run_id)


def test_pending_job_shows_pending_with_its_reason(slurm_env, cli, tmp_path: Path) -> None:  # noqa: F811 - the fixture
    recipe = command_job(tmp_path, ["true"], extra='["--begin=now+3600"]')
    code, out, err = cli("run", str(recipe), "--detach")
    assert code == 0, err
    run_id = int(out.split()[0])
    job = wait_for(lambda: (j := _job(run_id)) and j.state_reason and j, 30)
    assert job.state == "PENDING" and job.state_reason == "BeginTime"
    assert run_row(run_id).status == "running"
    code, out, err = cli("show", str(run_id), "--json")
    assert code == 0 and json.loads(out)["slurm"]["state"] == "PENDING"
    cli("stop", str(run_id))
    assert job.job_id not in slurm_env.jobs()


def test_a_job_outliving_its_supervisor_and_follower_is_followed_again(slurm_env, cli, tmp_path: Path) -> None:  # noqa: F811 - the fixture
    recipe = command_job(tmp_path, ["sleep", "600"])
    code, out, err = cli("run", str(recipe), "--detach")
    assert code == 0, err
    run_id = int(out.split()[0])
    job = wait_for(lambda: (j := _job(run_id)) and j.state == "RUNNING" and j, 60)
    run = run_row(run_id)
    local = [p for p in _run_processes(run_id)
             if "zerodeck.core.launch.slurm.follow" in " ".join(psutil.Process(p).cmdline())]
    for pid in [run.supervisor_pid, *local]:  # the login node's half dies; the job runs on
        os.kill(pid, 9)
    wait_for(lambda: not psutil.pid_exists(run.supervisor_pid) or psutil.Process(run.supervisor_pid).status()
             == psutil.STATUS_ZOMBIE, 10)
    code, out, err = cli("runs", "--json")
    assert "re-adopted" in err, err
    assert job.job_id in slurm_env.jobs()
    log = Path(run.log_path)
    wait_for(lambda: f"following Slurm job {job.job_id} again" in log.read_text(), 30)
    assert run_row(run_id).status == "running" and slurm_env.jobs().count(job.job_id) == 1  # not resubmitted
    code, out, err = cli("stop", str(run_id))
    final = run_row(run_id)
    assert final.outcome == "killed" and "Slurm CANCELLED" in final.reason, final.reason
    assert job.job_id not in slurm_env.jobs()


def test_a_node_failure_is_lost_naming_the_node(slurm_env, cli, tmp_path: Path) -> None:  # noqa: F811 - the fixture
    recipe = command_job(tmp_path, ["sleep", "600"], nodes=2, extra='["--no-requeue"]')
    code, out, err = cli("run", str(recipe), "--detach")
    assert code == 0, err
    run_id = int(out.split()[0])
    wait_for(lambda: (j := _job(run_id)) and j.state == "RUNNING" and j, 60)
    try:
        slurm_env.run(["scontrol", "update", "nodename=zdnode2", "state=down", "reason=zerodeck-test"])
        final = wait_for(lambda: (x := run_row(run_id)).finished and x, 60)
    finally:
        slurm_env.run(["scontrol", "update", "nodename=zdnode2", "state=resume"], check=False)
    assert final.outcome == "lost" and final.reason.startswith("node zdnode2 failed (Slurm NODE_FAIL"), final.reason
    assert _job(run_id).state == "NODE_FAIL"
