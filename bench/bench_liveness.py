"""Liveness figures (issue 11): from a supervisor's SIGKILL to the run's record being right.

Each case runs a `command` recipe (a Python program printing the builtin trainer's step lines, no
training) in a scratch ZERODECK_HOME through the installed CLI, SIGKILLs the run's supervisor, and
measures:

1. watcher, job alive: a foreground `zerodeck run` watches; the job keeps running. Time until the
   record names a live supervisor again (re-adopted), and whether the run then ends `succeeded`.
2. watcher, job gone: a foreground `zerodeck run` watches; the job has printed its done line and
   is killed with its supervisor. Time until the record is `succeeded` (with its metric points)
   and until the foreground command returns.
3. no watcher: `zerodeck run --detach`, supervisor and job killed after the done line; nothing
   changes until the next command: the wall time of that `zerodeck runs` and the record after it.

    .venv/bin/python bench/bench_liveness.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ZD = str(Path(sys.executable).with_name("zerodeck"))
sys.path.insert(0, str(ROOT))

PROGRAM = """
import json, sys, time
total, every, hang = int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
for s in range(1, total + 1):
    print(json.dumps({"zerodeck": "step", "step": s, "total_steps": total, "loss": 6.0 - s / 100, "rank": 0}),
          flush=True)
    time.sleep(every)
print(json.dumps({"zerodeck": "done", "steps": total, "train_runtime": 1.0, "train_loss": 5.0}), flush=True)
time.sleep(hang)
"""


def recipe(tmp: Path, total: int, every: float, hang: float) -> Path:
    (tmp / "data").mkdir(exist_ok=True)
    shutil.copy(ROOT / "recipes" / "data" / "demo-alpaca.jsonl", tmp / "data")
    prog = tmp / "prog.py"
    prog.write_text(PROGRAM)
    argv = json.dumps([sys.executable, str(prog), "{run_dir}", str(total), str(every), str(hang)])
    text = (ROOT / "recipes" / "demo-cpu-zero0.toml").read_text().replace(
        '[launch]\nbackend = "builtin"', f'[launch]\nbackend = "command"\nargv = {argv}')
    path = tmp / f"liveness-{total}-{hang}.toml"
    path.write_text(text)
    return path


class Home:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {**os.environ, "ZERODECK_HOME": str(root)}
        self.env.pop("ZERODECK_DB", None)
        self._store = None
        # Create the store first: this process reads it while the CLI runs.
        subprocess.run([ZD, "runs"], env=self.env, check=True, capture_output=True)

    def store(self):  # type: ignore[no-untyped-def]
        from zerodeck.store.api import Store

        if self._store is None:
            self._store = Store.open(f"sqlite:///{self.root / 'zerodeck.db'}")
        return self._store

    def newest(self):  # type: ignore[no-untyped-def]
        if not (self.root / "zerodeck.db").exists():
            return None
        runs = self.store().runs(limit=1)
        return runs[0] if runs else None


def wait(pred, timeout: float, poll: float = 0.02):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(poll)
    raise TimeoutError(f"not within {timeout}s")


def running_with_steps(home: Home):  # type: ignore[no-untyped-def]
    return wait(lambda: (r := home.newest()) is not None and r.status == "running" and r.steps_done and r, 60)


def kill_job(workdir: str) -> None:
    from zerodeck.core.launch.procs import kill_pids, tagged_pids, wait_gone

    kill_pids(tagged_pids(workdir), signal.SIGKILL)
    wait_gone(workdir, 10)


def case_watcher_job_alive(home: Home, path: Path) -> tuple[float, str]:
    from zerodeck.core.launch.procs import supervisor_alive

    fg = subprocess.Popen([ZD, "run", str(path)], env=home.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run = running_with_steps(home)
    os.kill(run.supervisor_pid, signal.SIGKILL)
    t0 = time.monotonic()
    wait(lambda: (r := home.store().run(run.id)).supervisor_pid != run.supervisor_pid
         and supervisor_alive(r.supervisor_pid, r.id, r.workdir), 60)
    took = time.monotonic() - t0
    fg.wait(120)
    return took, home.store().run(run.id).outcome


def case_watcher_job_gone(home: Home, path: Path) -> tuple[float, float, str]:
    fg = subprocess.Popen([ZD, "run", str(path)], env=home.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run = running_with_steps(home)
    wait(lambda: '"zerodeck": "done"' in Path(run.log_path).read_text(), 60)
    os.kill(run.supervisor_pid, signal.SIGKILL)
    kill_job(run.workdir)
    t0 = time.monotonic()
    final = wait(lambda: (r := home.store().run(run.id)).finished and r, 60)
    recorded = time.monotonic() - t0
    fg.wait(60)
    returned = time.monotonic() - t0
    points = len(home.store().metrics(run.id))
    return recorded, returned, f"{final.outcome} ({points} points, exit_code {final.exit_code})"


def case_no_watcher(home: Home, path: Path) -> tuple[float, float, str]:
    subprocess.run([ZD, "run", "--detach", str(path)], env=home.env, check=True, capture_output=True)
    run = running_with_steps(home)
    wait(lambda: '"zerodeck": "done"' in Path(run.log_path).read_text(), 60)
    os.kill(run.supervisor_pid, signal.SIGKILL)
    kill_job(run.workdir)
    time.sleep(1.0)
    before = home.store().run(run.id).status
    t0 = time.monotonic()
    subprocess.run([ZD, "runs", "--json"], env=home.env, check=True, capture_output=True)
    took = time.monotonic() - t0
    final = home.store().run(run.id)
    t1 = time.monotonic()
    subprocess.run([ZD, "runs", "--json"], env=home.env, check=True, capture_output=True)
    plain = time.monotonic() - t1
    return took, plain, f"{before} -> {final.outcome} ({len(home.store().metrics(run.id))} points)"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = ap.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="zd-bench-liveness-"))
    a: list[float] = []
    b_rec: list[float] = []
    b_ret: list[float] = []
    c: list[float] = []
    c_plain: list[float] = []
    try:
        for i in range(args.repeat):
            tmp = scratch / str(i)
            tmp.mkdir()
            home = Home(tmp / "home")
            took, outcome = case_watcher_job_alive(home, recipe(tmp, total=24, every=0.25, hang=0))
            a.append(took)
            print(f"[{i}] watcher, job alive: re-adopted {took:.2f}s after the SIGKILL; run {outcome}", flush=True)
            rec, ret, what = case_watcher_job_gone(home, recipe(tmp, total=3, every=0.1, hang=600))
            b_rec.append(rec)
            b_ret.append(ret)
            print(f"[{i}] watcher, job gone: record right {rec:.2f}s after, foreground returned {ret:.2f}s after;"
                  f" {what}", flush=True)
            took, plain, what = case_no_watcher(home, recipe(tmp, total=3, every=0.1, hang=600))
            c.append(took)
            c_plain.append(plain)
            print(f"[{i}] no watcher: the next `zerodeck runs` ({took:.2f}s wall) left the record {what};"
                  f" the same command with nothing to reconcile: {plain:.2f}s", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)

    def fig(xs: list[float]) -> str:
        return f"median {statistics.median(xs):.2f}s, max {max(xs):.2f}s (n={len(xs)})"

    print()
    print("time from a supervisor's SIGKILL to the run's record being right (target < 10 s with a watcher)")
    print(f"  foreground watcher, job still running (re-adopted):   {fig(a)}")
    print(f"  foreground watcher, job gone (recorded from its log):  {fig(b_rec)}")
    print(f"  ... until the foreground `zerodeck run` returned:      {fig(b_ret)}")
    print(f"  no watcher: right at the next command; its wall time:  {fig(c)}")
    print(f"  ... that command with nothing to reconcile:            {fig(c_plain)}")


if __name__ == "__main__":
    main()
