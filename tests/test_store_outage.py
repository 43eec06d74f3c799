"""A store that blinks loses nothing: a real PostgreSQL server stopped and started under a run.

The quick test drives the supervisor's spool (core/launch/spool.py) against the real server; the
slow one stops the server for 30 s in the middle of a real CPU demo run (the builtin trainer, two
DeepSpeed ranks) started by a foreground `zerodeck run`, with `zerodeck logs -f` following it, and
compares the record with the same recipe run without an outage.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from zerodeck.core.launch import procs
from zerodeck.core.launch.spool import SPOOL_FILE, SpooledStore
from zerodeck.store.api import Store
from zerodeck.store.errors import StoreUnreachable
from zerodeck.store.records import CardPeakRecord, SampleRecord

from tests.launch_helpers import demo_copy, wait_for

ZD = str(Path(sys.executable).with_name("zerodeck"))
OUTAGE_S = 30.0


def test_spool_on_a_real_server_stopped_and_started(pg_server: Any, pg_url: str, tmp_path: Path) -> None:
    store = Store.open(pg_url)
    store.save_snapshot(hash="h", name="r", toml="", source_path=None)
    run_id = store.add_run(name="r", recipe_hash="h", backend="builtin", device="cpu", cards=1, status="queued")
    notes: list[str] = []
    spool = SpooledStore(store, tmp_path / SPOOL_FILE, note=notes.append)
    spool.update_run(run_id, status="running", pgid=11)
    pg_server.stop()
    try:
        with pytest.raises(StoreUnreachable):
            store.run(run_id)  # what any reader meets while the server is away: one line
        started = time.monotonic()
        for k in range(1, 4):
            spool.upsert_metrics(run_id, [{"step": k, "loss": 3.0 - k}])
            spool.update_run(run_id, steps_done=k)
            assert spool.stop_requested(run_id) is False
        spool.replace_telemetry(run_id, [SampleRecord(0.0, "cpu", "rank0", 10.0)],
                                [CardPeakRecord("cpu", "rank0", 10.0)])
        spool.add_event(run_id, "stalled", {"summary": "x"})
        spool.finish_run(run_id, "succeeded", None, exit_code=0)
        assert time.monotonic() - started < 5, "a write while the server is away never waits on it"
        assert spool.pending == 9 and (tmp_path / SPOOL_FILE).exists()
    finally:
        pg_server.start()
    assert spool.settle(timeout=60)
    run = store.run(run_id)
    assert run is not None and (run.status, run.outcome, run.steps_done, run.pgid) == ("finished", "succeeded", 3, 11)
    assert [m.step for m in store.metrics(run_id)] == [1, 2, 3]
    assert [p.peak_mb for p in store.card_peaks(run_id)] == [10.0]
    assert [e.kind for e in store.events(run_id)] == ["stalled"]
    assert "store unreachable" in notes[0] and "reachable again" in notes[-1]
    assert not (tmp_path / SPOOL_FILE).exists()


def _cli(*argv: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ZD, *argv], capture_output=True, text=True, env=env, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def _record(store: Store, run_id: int) -> dict[str, Any]:
    run = store.run(run_id)
    assert run is not None
    return {
        "status": run.status, "outcome": run.outcome, "exit_code": run.exit_code,
        "steps": (run.steps_done, run.steps_total), "has_loss": run.final_loss is not None,
        "throughput": run.tokens_per_s is not None and run.samples_per_s is not None,
        "peak": run.measured_peak_gib is not None, "baseline": bool(run.baseline),
        "points": [m.step for m in store.metrics(run_id)],
        "peaks": sorted((p.source, p.card) for p in store.card_peaks(run_id)),
        "samples": bool(store.memory_series(run_id)),
    }


@pytest.mark.slow
def test_server_stopped_30s_during_a_demo_run_loses_nothing(pg_server: Any, pg_url: str, tmp_path: Path,
                                                           zd_home: Path) -> None:
    env = {**os.environ, "ZERODECK_DB": pg_url, "ZERODECK_HOME": str(zd_home)}
    # Long enough that the server goes away in mid-training and comes back while the ranks still step.
    recipe = demo_copy(tmp_path, 0, max_steps="60", epochs="3.0")
    store = Store.open(pg_url)

    control = _cli("run", str(recipe), "--json", env=env, timeout=600)
    assert control.returncode == 0, control.stderr
    control_id = json.loads(control.stdout)[0]["id"]

    fg = subprocess.Popen([ZD, "run", str(recipe)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=env, stdin=subprocess.DEVNULL)
    follow: subprocess.Popen[str] | None = None
    try:
        assert fg.stdout is not None
        run_id = int(fg.stdout.readline())
        follow = subprocess.Popen([ZD, "logs", "-f", str(run_id)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=env, stdin=subprocess.DEVNULL)
        wait_for(lambda: len(store.metrics(run_id)) >= 3, timeout=300)
        run = store.run(run_id)
        assert run is not None and run.workdir and run.supervisor_pid
        run_dir = Path(run.workdir)
        ranks = procs.tagged_pids(run.workdir)
        pg_server.stop()
        try:
            stopped = time.monotonic()
            listing = _cli("runs", env=env)
            assert listing.returncode == 1
            assert listing.stderr.startswith("zerodeck: store unreachable: "), listing.stderr
            assert len(listing.stderr.strip().splitlines()) == 1 and "Traceback" not in listing.stderr
            time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped)) / 2)
            # Mid-outage: the job and its supervisor go on, writing into the spool; nobody stopped them.
            assert procs.supervisor_alive(run.supervisor_pid, run_id, run.workdir)
            assert (run_dir / SPOOL_FILE).exists()
            assert procs.tagged_pids(run.workdir) & ranks or "finished" in (run_dir / "run.log").read_text()
            assert fg.poll() is None and follow.poll() is None  # the run and logs -f wait through it
            time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped)))
        finally:
            pg_server.start()
        out, err = fg.communicate(timeout=600)
        assert fg.returncode == 0, err
        assert f"run {run_id} " in err and ": succeeded" in err and "Traceback" not in err
        followed, follow_err = follow.communicate(timeout=120)
        assert follow.returncode == 0, follow_err
        assert f"run {run_id} finished: succeeded" in followed
    finally:
        for proc in (fg, follow):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    mine, theirs = _record(store, run_id), _record(store, control_id)
    assert mine == theirs, (mine, theirs)
    assert mine["outcome"] == "succeeded" and mine["points"] == list(range(1, mine["steps"][0] + 1))
    assert mine["peaks"] and mine["peak"] and mine["samples"]
    log = (run_dir / "run.log").read_text()
    assert "store unreachable" in log and "store reachable again" in log
    assert not (run_dir / SPOOL_FILE).exists()


def test_a_reader_open_across_a_restart_reads_at_once(pg_server: Any, pg_url: str) -> None:
    """The pool's connections died with the server; the first read after it is back replaces them
    (pre-ping) instead of reporting the store unreachable (a TUI or a waiting `run` stays open)."""
    store = Store.open(pg_url)
    assert store.count_runs() == 0
    pg_server.stop()
    pg_server.start()
    assert store.count_runs() == 0
