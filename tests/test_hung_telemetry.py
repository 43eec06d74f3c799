"""A hung npu-smi never delays a run nor leaves a process behind (issue 11, finding 4).

The fake npu-smi is a shell wrapper whose child hangs (`sleep 1000`), as a vendor wrapper around a
wedged driver does; its twin replays a real 910B3 capture. Everything runs for real: the probes, the
`zerodeck` command, the supervisor of a `command` run on `device = "npu"` (preflight needs no npu
tooling for a command recipe, so the whole launch path runs here).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from zerodeck.core.telemetry.model import CARD_KEYS, PROCESS_KEYS
from zerodeck.core.telemetry.poller import Poller
from zerodeck.core.telemetry.recorder import RunRecorder
from zerodeck.core.telemetry.sources import NpuSmiSource
from zerodeck.store.api import Store

from .fake_npusmi import alive, hanging, pids_in, replaying
from .launch_helpers import wait_for


@pytest.fixture
def hung(tmp_path: Path) -> tuple[Path, Path]:
    """(the hanging wrapper, the file each of its hung children's pid is appended to)"""
    pidfile = tmp_path / "hung.pids"
    binary = hanging(tmp_path / "bin", pidfile)
    yield binary, pidfile
    for pid in pids_in(pidfile):  # whatever a failing test left, this test leaves nothing
        if alive(pid):
            os.kill(pid, 9)


def no_child_left(pidfile: Path) -> None:
    pids = pids_in(pidfile)
    assert pids, "the fake npu-smi never ran"
    wait_for(lambda: not any(alive(p) for p in pids), timeout=3.0, poll=0.05)


def path_with(binary: Path) -> dict[str, str]:
    return {**os.environ, "PATH": f"{binary.parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def test_the_fake_reproduces_the_orphan(hung: tuple[Path, Path]) -> None:
    """Killing only the wrapper, as the probe runner used to, leaves its hung child running."""
    binary, pidfile = hung
    proc = subprocess.Popen([str(binary), "info"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(lambda: pids_in(pidfile), timeout=5.0, poll=0.05)
    proc.kill()
    proc.wait()
    (child,) = pids_in(pidfile)
    time.sleep(0.3)
    assert alive(child)


def test_a_time_out_kills_the_whole_probe_group(hung: tuple[Path, Path]) -> None:
    binary, pidfile = hung
    t0 = time.monotonic()
    snap = NpuSmiSource(binary=str(binary)).read(timeout=0.5)
    took = time.monotonic() - t0
    assert snap.error == "npu-smi: timed out after 0.5 s" and snap.timed_out and snap.cards == []
    assert took < 2.0
    no_child_left(pidfile)


def test_a_stopping_poller_kills_the_read_in_flight_and_backs_off(hung: tuple[Path, Path]) -> None:
    binary, pidfile = hung
    poller = Poller(NpuSmiSource(binary=str(binary)), lambda s: None, timeout=60.0, with_host=True)
    poller.start()
    wait_for(lambda: pids_in(pidfile), timeout=5.0, poll=0.05)
    t0 = time.monotonic()
    assert poller.stop(join_timeout=0.2)
    assert time.monotonic() - t0 < 2.0
    no_child_left(pidfile)
    closing = poller.poll_once()  # backed off: the source is not asked again
    assert closing.timed_out and closing.host is not None and len(pids_in(pidfile)) == 1


def test_recorder_starts_at_once_backs_off_and_keeps_host_figures(hung: tuple[Path, Path]) -> None:
    binary, pidfile = hung
    store = Store.from_environment()
    store.save_snapshot(hash="h" * 16, name="demo", toml="name = 'demo'", source_path=None)
    run_id = store.add_run(name="demo", recipe_hash="h" * 16, device="npu")
    rec = RunRecorder(store, run_id, "npu", set, source=NpuSmiSource(binary=str(binary)), interval=0.1,
                      timeout=0.3)
    t0 = time.monotonic()
    rec.start()
    start_s = time.monotonic() - t0
    assert start_s < 1.0  # the launch goes on after at most BASELINE_WAIT_S
    run = store.run(run_id)
    assert run is not None and run.baseline["host"]["ram_total_mb"] > 0  # a trace before the job starts
    time.sleep(1.5)
    t0 = time.monotonic()
    rec.stop(failed=False)
    assert time.monotonic() - t0 < 1.5
    assert len(pids_in(pidfile)) == 1  # timed out once, then left alone (10 s back-off)
    no_child_left(pidfile)
    peaks = {p.card: p for p in store.card_peaks(run_id)}
    assert set(peaks) == {"host", "swap"} and peaks["host"].peak_mb > 0  # type: ignore[operator]
    host_points = [s for s in store.memory_series(run_id) if s[2] == "host"]
    assert len(host_points) >= 3  # sampled every 0.1 s while the card source rested
    run = store.run(run_id)
    assert run is not None and run.baseline["error"] == "npu-smi: timed out after 0.3 s"


def cli(*args: str, env: dict[str, str]) -> tuple[int, str, str, float]:
    exe = Path(sys.executable).with_name("zerodeck")
    t0 = time.monotonic()
    proc = subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, timeout=60)
    return proc.returncode, proc.stdout, proc.stderr, time.monotonic() - t0


def test_cards_once_answers_within_3_s_with_the_source_timed_out(hung: tuple[Path, Path]) -> None:
    binary, pidfile = hung
    env = path_with(binary)
    code, out, err, took = cli("cards", "--once", env=env)  # the source is detected: npu-smi is on PATH
    assert took < 3.0, f"cards --once took {took:.2f} s"
    assert code == 1 and err == "zerodeck: npu-smi: timed out after 2 s\n"
    assert out.startswith("npu-smi: timed out after 2 s") and "host: cpu" in out
    code, out, err, took = cli("cards", "--source", "npu-smi", "--json", env=env)
    assert took < 3.0 and code == 1
    data = json.loads(out)
    assert list(data) == ["source", "cards", "processes", "error"]
    assert data == {"source": "npu-smi", "cards": [], "processes": [], "error": "npu-smi: timed out after 2 s"}
    code, out, err, _ = cli("cards", "--once", "--timeout", "0.4", env=env)
    assert code == 1 and err == "zerodeck: npu-smi: timed out after 0.4 s\n"
    code, _, err, _ = cli("cards", "--once", "--timeout", "0", env=env)
    assert code == 2 and err.startswith("zerodeck: --timeout:") and len(err.splitlines()) == 1
    assert len(pids_in(pidfile)) == 3
    no_child_left(pidfile)


def test_cards_once_with_a_replayed_capture_keeps_the_contract(tmp_path: Path) -> None:
    env = path_with(replaying(tmp_path / "bin"))
    code, out, err, _ = cli("cards", "--once", "--json", env=env)
    assert code == 0, err
    data = json.loads(out)
    assert list(data) == ["source", "cards", "processes"] and data["source"] == "npu-smi"
    assert len(data["cards"]) == 8 and all(tuple(c) == CARD_KEYS for c in data["cards"])
    assert data["cards"][2]["hbm_used_mb"] == 41052
    assert data["processes"] == [{"npu": 2, "chip": 0, "pid": 1333928, "name": None, "memory_mb": 37709}]
    assert all(tuple(p) == PROCESS_KEYS for p in data["processes"])


def test_doctor_answers_within_3_s(hung: tuple[Path, Path], tmp_path: Path) -> None:
    binary, pidfile = hung
    code, out, err, took = cli("doctor", "--json", env=path_with(binary))
    assert took < 3.0, f"doctor took {took:.2f} s"
    data = json.loads(out)
    assert code == 1 and data["sources"]["npu-smi"] == "npu-smi: timed out after 2 s"
    assert data["failed_sources"] == ["npu-smi"] and data["cards"] == []
    no_child_left(pidfile)
    code, out, _, _ = cli("doctor", env=path_with(replaying(tmp_path / "good")))
    assert code == 0 and "npu-smi  available" in out and "65536" in out


def test_a_run_with_a_hanging_npu_smi_starts_promptly(hung: tuple[Path, Path], tmp_path: Path) -> None:
    """A real `zerodeck run` on device npu: the job starts under 1 s after the recorder's first
    reading began (it used to wait for the 10 s time-out), and the run keeps host peaks."""
    binary, pidfile = hung
    recipe = tmp_path / "npu.toml"
    recipe.write_text('name = "npu-start"\n[model]\nname = "zerodeck-tiny"\n[method]\nkind = "full"\n'
                      '[hardware]\ndevice = "npu"\ncards = 1\ncard_gb = 64.0\n'
                      '[launch]\nbackend = "command"\nargv = ["date", "+job-start %s.%N"]\n')
    env = path_with(binary)
    code, out, err, took = cli("run", str(recipe), "--json", env=env)
    assert code == 0, err
    (row,) = json.loads(out)
    code, out, _, _ = cli("show", str(row["id"]), "--json", env=env)
    run = json.loads(out)
    job_start = float(next(ln for ln in Path(run["log_path"]).read_text().splitlines()
                           if ln.startswith("job-start")).split()[1])
    recorder_start = run["baseline"]["wall"]  # when the first (hung) npu-smi read began
    delay = job_start - recorder_start
    assert 0 <= delay < 1.0, f"the job started {delay:.2f} s after the recorder"
    assert run["baseline"]["source"] == "npu-smi" and run["baseline"]["host"]["ram_total_mb"] > 0
    assert {p["card"] for p in run["card_peaks"]} >= {"host"}
    no_child_left(pidfile)
