"""CPU ranks that a launcher forks after the run has started are recorded as cards.

A CPU run's telemetry follows the job's process tree (`Supervisor.job_pids`) with the real
`CpuRankSource` and `RunRecorder`. torchrun forks its ranks seconds after the launch, one after the
other, and a short demo run's ranks live only a few seconds; a tree cached past the next poll left
ranks out of the record (only the launcher, counted as `rank0`, and the host were stored). Here a
real launcher forks real ranks when the test says so, and a scripted clock steps the polls at the
recorder's 1 s cadence, so each moment of the race happens in the same order every time.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import psutil
import pytest
from zerodeck.core.launch.spec import JobSpec
from zerodeck.core.launch.supervisor import Supervisor
from zerodeck.core.telemetry.recorder import RunRecorder
from zerodeck.store.api import Store

# Each "fork" line on stdin forks the next rank (RANK = 0, 1); "end" ends the ranks and says "ended"; end of
# input ends the launcher. Rank r holds (r + 1) * 40 MB, touched so it is resident, then creates ready-r.
LAUNCHER = r"""
import os, subprocess, sys
rank = ("import os, sys; b = bytearray(int(os.environ['MB']) * 2**20); b[::4096] = b'x' * len(b[::4096]); "
        "open(os.environ['READY'], 'w').close(); sys.stdin.read()")
ranks = []
for line in sys.stdin:
    if line.strip() == "end":
        for p in ranks:
            p.stdin.close()
        code = max((p.wait() for p in ranks), default=0)
        print("ended", code, flush=True)
        continue
    r = len(ranks)
    ranks.append(subprocess.Popen([sys.executable, "-c", rank], stdin=subprocess.PIPE,
                                  env={**os.environ, "RANK": str(r), "LOCAL_RANK": str(r), "MB": str((r + 1) * 40),
                                       "READY": os.path.join(sys.argv[1], f"ready-{r}")}))
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def supervisor(tmp: Path, clock: Clock) -> Supervisor:
    store = Store.open(f"sqlite:///{tmp / 'z.db'}")
    store.save_snapshot(hash="h" * 16, name="demo", toml="name = 'demo'", source_path=None)
    run_id = store.add_run(name="demo", recipe_hash="h" * 16, device="cpu", cards=2)
    run_dir = tmp / "run"
    run_dir.mkdir()
    store.update_run(run_id, workdir=str(run_dir), log_path=str(run_dir / "run.log"))
    spec = JobSpec(argv=("launcher",), env={}, cwd=None, device="cpu", visible_devices=(0, 1), retries=0,
                   world_size=2, python=sys.executable, output_dir=None, validate_ds_config=False,
                   store_url=store.url)
    return Supervisor(store, run_id, spec, monotonic=clock, make_recorder=None)


def wait_for(path: Path) -> None:
    deadline = time.monotonic() + 60
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


def fork_rank(stdin: IO[str], tmp: Path, rank: int) -> None:
    stdin.write("fork\n")
    stdin.flush()
    wait_for(tmp / f"ready-{rank}")


# The deepspeed launcher's shape: a runner whose child (launch.py) forks the ranks.
RUNNER = "import subprocess, sys; sys.exit(subprocess.call([sys.executable, '-c', sys.argv[1], sys.argv[2]]))"


@pytest.fixture(params=["torchrun", "deepspeed"])
def launcher(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[subprocess.Popen[str]]:
    argv = [sys.executable, "-c", LAUNCHER, str(tmp_path)]
    if request.param == "deepspeed":
        argv = [sys.executable, "-c", RUNNER, LAUNCHER, str(tmp_path)]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while request.param == "deepspeed" and not psutil.Process(proc.pid).children():
        assert time.monotonic() < deadline, "the runner never started its launcher"
        time.sleep(0.02)
    yield proc
    if proc.poll() is None:
        for child in psutil.Process(proc.pid).children(recursive=True):
            child.kill()
        proc.kill()
    proc.wait(timeout=10)


def test_ranks_forked_between_polls_are_recorded_from_the_next_poll(tmp_path: Path,
                                                                    launcher: subprocess.Popen[str]) -> None:
    clock = Clock()
    sup = supervisor(tmp_path, clock)
    sup.pgid = launcher.pid
    rec = RunRecorder(sup.store, sup.run_id, "cpu", sup.job_pids, interval=1.0, clock=clock)
    rec.t0 = clock()
    assert launcher.stdin is not None
    seen: list[list[str]] = []

    def poll() -> None:
        snap = rec.poller.poll_once()
        seen.append([f"{c.key}:{c.pid}" for c in snap.cards])
        clock.now += 1.0  # the recorder's poll interval

    poll()  # the launcher alone, as right after the spawn: it stands in as card 0
    assert seen == [[f"rank0:{launcher.pid}"]]
    fork_rank(launcher.stdin, tmp_path, 0)
    poll()
    fork_rank(launcher.stdin, tmp_path, 1)
    poll()
    poll()
    ranks = {c.pid: c.rank for c in rec.run_cards()}
    # The ranks end, the launcher stays a moment: a run shorter than any cache of its tree.
    launcher.stdin.write("end\n")
    launcher.stdin.flush()
    assert launcher.stdout is not None and launcher.stdout.readline() == "ended 0\n"
    poll()
    launcher.stdin.close()
    assert launcher.wait(timeout=60) == 0
    poll()
    rec.stop(failed=False)

    said = f"cards per poll: {seen}"
    assert sorted(ranks.values()) == [0, 1] and launcher.pid not in ranks, said
    assert seen[-2:] == [[], []], said  # the launcher left behind stands in for no rank
    peaks = {p.card: p for p in sup.store.card_peaks(sup.run_id)}
    assert {"rank0", "rank1", "host"} <= set(peaks), said
    # Rank 0's figures are the rank's own (40 MB and the interpreter), none of the launcher's (~10 MB).
    assert 40 <= (peaks["rank0"].baseline_mb or 0) <= (peaks["rank0"].peak_mb or 0) < 120, said
    assert 80 <= (peaks["rank1"].baseline_mb or 0) <= (peaks["rank1"].peak_mb or 0) < 160, said
    rank0 = [r[3] for r in sup.store.memory_series(sup.run_id) if r[1:3] == ("cpu", "rank0")]
    assert rank0 and min(v or 0 for v in rank0) >= 40, said
    # The run log's line says which processes were read as which card, and when (six polls and the closing read).
    by_rank = {r: pid for pid, r in ranks.items()}
    assert rec.summary() == (f"7 card reading(s), longest gap 1.0 s; cards seen: rank0 (pid {by_rank[0]}) 1.0-3.0 s, "
                             f"rank1 (pid {by_rank[1]}) 2.0-3.0 s")

def test_a_rank_forked_after_the_tree_was_read_is_in_the_next_read(tmp_path: Path,
                                                                   launcher: subprocess.Popen[str]) -> None:
    clock = Clock()
    sup = supervisor(tmp_path, clock)
    sup.pgid = launcher.pid
    assert launcher.stdin is not None
    before = sup.job_pids()
    assert launcher.pid in before
    fork_rank(launcher.stdin, tmp_path, 0)
    assert sup.job_pids() == before  # the same poll's callers share one walk of the tree
    clock.now += 1.0
    first = sup.job_pids()
    assert len(first - before) == 1
    fork_rank(launcher.stdin, tmp_path, 1)
    clock.now += 1.0
    assert len(sup.job_pids() - first) == 1
