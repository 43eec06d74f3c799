"""Slurm figures of issue 15, on the one-machine test cluster (tests/slurm_cluster.py).

1. submit-to-running: from `zerodeck run --detach` to the run's Slurm job recorded RUNNING in the
   store, and to Slurm's own StartTime; end-to-recorded: from Slurm's EndTime of the job to the run
   recorded finished (each over a few short `command` runs on two nodes).
2. scheduler queries per minute with 50 followed jobs: 50 held jobs, each followed by its own
   `SharedQueue` poller (threads standing in for 50 followers) for one minute; the Slurm commands
   counted in the shared cache, against one squeue per job per poll.

Needs root and slurm-wlm + munge (scripts/test.sh installs them). Run: .venv/bin/python bench/bench_slurm.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
EXE = str(Path(sys.executable).with_name("zerodeck"))
RUNS = 4
FOLLOWED = 50
FOLLOW_S = 60.0


def _store(home: Path):  # noqa: ANN202
    from zerodeck.store.api import Store

    return Store.open(f"sqlite:///{home / 'zerodeck.db'}")


def latency(cluster, home: Path) -> None:  # noqa: ANN001
    env = {**os.environ, "ZERODECK_HOME": str(home), "SLURM_CONF": str(cluster.conf)}
    recipe = home / "sleep.toml"
    recipe.write_text('name = "bench-sleep"\n[model]\nname = "zerodeck-tiny"\n[hardware]\ndevice = "cpu"\n'
                      'cards = 1\n[launch]\nbackend = "command"\nargv = ["sleep", "3"]\n'
                      '[cluster]\nscheduler = "slurm"\nnodes = 2\n')
    to_recorded, to_start, to_submit, waits, end_lag = [], [], [], [], []
    for _ in range(RUNS):
        t0 = time.time()
        out = subprocess.run([EXE, "run", str(recipe), "--detach"], env=env, capture_output=True, text=True,
                             timeout=120, check=True)
        run_id = int(out.stdout.split()[0])
        store = _store(home)
        while True:
            job = store.slurm_job(run_id)
            if job is not None and job.state == "RUNNING":
                to_recorded.append(time.time() - t0)
                to_start.append(job.started_at.timestamp() - t0 if job.started_at else float("nan"))
                to_submit.append(job.submitted_at.timestamp() - t0 if job.submitted_at else float("nan"))
                waits.append(job.queue_wait_s if job.queue_wait_s is not None else float("nan"))
                break
            time.sleep(0.05)
        while True:
            run = store.run(run_id)
            if run is not None and run.finished:
                done = time.time()
                break
            time.sleep(0.05)
        job = store.slurm_job(run_id)
        assert run.outcome == "succeeded", (run.outcome, run.reason)
        # Slurm's EndTime has whole seconds: the lag is measured from it, so up to 1 s is rounding.
        end = job.ended_at.timestamp() if job.ended_at else done
        end_lag.append(done - end)
    print(f"submit-to-running (recorded in the store): median {_median(to_recorded):.2f} s, "
          f"max {max(to_recorded):.2f} s over {RUNS} runs")
    print(f"  of which: run command to sbatch (CLI, supervisor, follower start) median {_median(to_submit):.2f} s; "
          f"Slurm's queue wait (SubmitTime to StartTime, whole seconds) median {_median(waits):.2f} s; "
          f"to Slurm StartTime median {_median(to_start):.2f} s")
    print(f"end-to-recorded (Slurm EndTime to run finished): median {_median(end_lag):.2f} s, "
          f"max {max(end_lag):.2f} s")


def queries(cluster, home: Path) -> None:  # noqa: ANN001
    os.environ["SLURM_CONF"] = str(cluster.conf)
    from zerodeck.core.launch.slurm.queue import POLL_S, SharedQueue

    script = home / "hold.sh"
    script.write_text("#!/bin/bash\ntrue\n")
    ids = []
    for _ in range(FOLLOWED):
        out = cluster.run(["sbatch", "--parsable", "--hold", f"--output={home}/hold-%j.out", str(script)])
        ids.append(out.strip().split(";")[0])
    cache = home / "followers" / "queue.json"  # apart from the latency runs' counts
    stop = threading.Event()
    seen: dict[str, str] = {}

    def follow(job_id: str) -> None:
        queue = SharedQueue(cache)  # each follower its own client, as each is its own process
        while not stop.is_set():
            state = queue.observe([job_id]).get(job_id)
            if state is not None:
                seen[job_id] = state.state
            stop.wait(POLL_S)

    threads = [threading.Thread(target=follow, args=(j,)) for j in ids]
    t0 = time.time()
    for t in threads:
        t.start()
    time.sleep(FOLLOW_S)
    stop.set()
    for t in threads:
        t.join()
    minutes = (time.time() - t0) / 60
    calls = SharedQueue(cache).calls()
    total = sum(calls.values())
    naive = FOLLOWED * (60 / POLL_S)
    print(f"{FOLLOWED} followed jobs ({len(seen)} seen, states {sorted(set(seen.values()))}), poll {POLL_S:g} s, "
          f"{minutes:.2f} min: {total / minutes:.1f} scheduler queries/min "
          f"({json.dumps(calls)}); one squeue per job per poll would be {naive:.0f}/min")
    cluster.run(["scancel", *ids], check=False)


def _median(values: list[float]) -> float:
    s = sorted(values)
    return s[len(s) // 2]


def main() -> int:
    from tests.slurm_cluster import SlurmCluster, missing_reason

    reason = missing_reason()
    if reason:
        print(f"skipped: {reason}")
        return 0
    root = Path(tempfile.mkdtemp(prefix="zd-slurm-"))
    root.chmod(0o755)
    cluster = SlurmCluster(root)
    home = Path(tempfile.mkdtemp(prefix="zd-bench-"))
    try:
        t0 = time.time()
        cluster.start()
        print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; test cluster up in {time.time() - t0:.1f} s "
              f"(2 nodes on {cluster.host}, {os.cpu_count()} CPUs)")
        latency(cluster, home)
        queries(cluster, home)
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
