"""RunRecorder end to end: a real process tree of CPU ranks allocating memory, and a replayed
npu-smi history for the NPU path; both read back from the store."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil
from zerodeck.core.telemetry.recorder import RunRecorder
from zerodeck.core.telemetry.series import MAX_POINTS, Point, Series
from zerodeck.core.telemetry.sources import ReplaySource
from zerodeck.store.api import Store

from .conftest import FIXTURES

TABLE = (FIXTURES / "npu-smi" / "info_910b3_25.2.0_procs_noname.txt").read_text()

# A launcher that starts two ranks; rank r holds (r + 1) * 40 MB, then both exit.
LAUNCHER = r"""
import os, subprocess, sys
child = ("import os, time; b = bytearray(int(os.environ['MB']) * 2**20); "
         "b[::4096] = b'x' * len(b[::4096]); time.sleep(float(os.environ['HOLD']))")
procs = [subprocess.Popen([sys.executable, "-c", child], env={**os.environ, "RANK": str(r), "LOCAL_RANK": str(r),
                          "MB": str((r + 1) * 40)}) for r in range(2)]
sys.exit(max(p.wait() for p in procs) or 3)
"""


def new_run(device: str) -> tuple[Store, int]:
    store = Store.from_environment()
    store.save_snapshot(hash="h" * 16, name="demo", toml="name = 'demo'", source_path=None)
    return store, store.add_run(name="demo", recipe_hash="h" * 16, device=device)


def samples_of(store: Store, run_id: int) -> list[tuple[float, str, str, float | None, float | None]]:
    return store.memory_series(run_id)


def tree(root: int) -> set[int]:
    try:
        proc = psutil.Process(root)
        return {root} | {c.pid for c in proc.children(recursive=True)}
    except psutil.Error:
        return set()


def test_cpu_ranks_real_process_tree() -> None:
    store, run_id = new_run("cpu")
    holder: dict[str, int] = {}
    rec = RunRecorder(store, run_id, "cpu", lambda: tree(holder["pid"]) if "pid" in holder else set(), interval=0.1)
    rec.start()  # before the job: the baseline exists even if the launch dies at once
    assert store.run(run_id).baseline["source"] == "cpu"  # type: ignore[union-attr]
    proc = subprocess.Popen([sys.executable, "-c", LAUNCHER], env={**os.environ, "HOLD": "1.5"})
    holder["pid"] = proc.pid
    assert proc.wait(timeout=60) == 3
    time.sleep(0.2)
    rec.stop(failed=True)

    peaks = {p.card: p for p in store.card_peaks(run_id)}
    samples = [(t, source, card) for t, source, card, _, _ in samples_of(store, run_id)]
    run = store.run(run_id)
    assert run is not None
    assert {"rank0", "rank1", "host", "swap"} <= set(peaks)
    assert 40 <= peaks["rank0"].peak_mb < 120  # type: ignore[operator]
    assert 80 <= peaks["rank1"].peak_mb < 160  # type: ignore[operator]
    assert peaks["rank1"].total_mb == round(psutil.virtual_memory().total / 2**20)
    per_card = {c: [x for x in samples if x[2] == c] for c in ("rank0", "rank1", "host")}
    assert all(len(v) >= 3 for v in per_card.values())
    assert all(x[1] == "cpu" for x in per_card["rank0"])
    assert run.measured_peak_gib == round(peaks["rank1"].peak_mb / 1024, 3)  # type: ignore[operator]
    failure = run.failure_snapshot
    assert sorted(c["key"] for c in failure["cards"]) == ["rank0", "rank1"]
    assert failure["after_exit"]["cards"] == []  # the ranks were gone when the job ended
    assert all(p["in_run"] for p in failure["processes"])


def test_npu_replay_baseline_peak_attribution_and_visible_devices() -> None:
    store, run_id = new_run("npu")
    idle = TABLE.replace("41052/ 65536", "3399 / 65536").replace(
        "| 2       0                 | 1333928       |                          | 37709                   |",
        "| No running processes found in NPU 2                                                            |")
    src = ReplaySource("npu-smi", [idle, TABLE, TimeoutError(10.0), TABLE, idle])
    rec = RunRecorder(store, run_id, "npu", lambda: {1333928}, visible_devices=[2, 3], interval=0.05, source=src)
    rec.start()
    time.sleep(0.3)
    rec.stop(failed=True)
    peaks = {p.card: p for p in store.card_peaks(run_id)}
    run = store.run(run_id)
    assert run is not None
    assert set(peaks) - {"host", "swap"} == {"2", "3"}  # only the run's visible cards
    assert (peaks["2"].baseline_mb, peaks["2"].peak_mb, peaks["2"].total_mb) == (3399, 41052, 65536)
    assert peaks["3"].peak_mb == 3390
    assert run.measured_peak_gib == round(41052 / 1024, 3)
    assert run.baseline["processes"] == []
    failure = run.failure_snapshot
    assert [p["pid"] for p in failure["processes"] if p["in_run"]] == [1333928]
    assert failure["visible_devices"] == [2, 3]


def test_series_stays_small_and_keeps_the_spike() -> None:
    series = Series(width=1.0)
    hours = 72
    for t in range(hours * 3600):
        series.add(Point(t=float(t), memory_used_mb=1000 + (50000 if t == 123_457 else 0), memory_total_mb=65536,
                         util_pct=50.0, power_w=None, temp_c=40))
    assert len(series.points) <= MAX_POINTS
    assert max(p.memory_used_mb for p in series.points) == 51000  # type: ignore[type-var]
    assert series.points[0].util_pct == 50.0 and series.points[0].power_w is None


def test_samples_and_peaks_reach_the_store_while_the_run_goes() -> None:
    store, run_id = new_run("npu")
    now = [0.0]
    src = ReplaySource("npu-smi", [TABLE])
    rec = RunRecorder(store, run_id, "npu", lambda: {1333928}, source=src, clock=lambda: now[0])
    rec.t0 = now[0]

    def stored() -> dict[str, float | None]:
        return {p.card: p.peak_mb for p in store.card_peaks(run_id)}

    def samples() -> list[tuple[str, float]]:
        return [(card, t) for t, _source, card, _, _ in samples_of(store, run_id)]

    for _ in range(30):
        rec.poller.poll_once()
        now[0] += 1.0
    assert stored() == {} and samples() == []  # not yet a minute
    for _ in range(40):
        rec.poller.poll_once()
        now[0] += 1.0
    assert stored()["2"] == 41052  # a supervisor killed now would still leave the peaks
    mid = samples()
    assert mid and {c for c, _ in mid} >= {"0", "2", "host"}  # ... and the samples so far
    rec.stop(failed=False)
    after = stored()
    assert after["2"] == 41052 and len(after) == len(set(after)) == 10  # 8 cards + host + swap, no duplicates
    final = samples()
    assert len(final) == len(set(final)) and len(final) >= len(mid)  # replaced, not appended twice
    assert store.run(run_id).failure_snapshot == {}  # type: ignore[union-attr]
