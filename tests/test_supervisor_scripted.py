"""The supervisor driven by scripted process histories and a fake clock (as honcho tests its manager).

No process starts and nothing sleeps: the job is a `ScriptedJob` that writes its lines into the run's
log when the fake clock reaches them, the process sweep is a fake that ends those jobs, and the store
is a real SQLite file. The real-process tests in test_launch_supervisor.py stay beside these.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import pytest
from zerodeck.core.launch import supervisor as sup_mod
from zerodeck.core.launch.api import create_run
from zerodeck.core.launch.spec import JobSpec
from zerodeck.core.launch.supervisor import GRACE_S, Supervisor
from zerodeck.core.recipe import load_recipe_file
from zerodeck.store.api import Store

from .conftest import FIXTURES, ROOT

FLAKE = ("RuntimeError: [/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:144] "
         "Gloo connectFullMesh failed with Connection refused")

# One step of a history: at this many (fake) seconds after the start, write a line, run a callable
# (the test's hand on the world, e.g. a stop request), or exit with a status.
Event = tuple[float, "str | Callable[[], None] | Exit"]


class Exit:
    def __init__(self, code: int) -> None:
        self.code = code


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class ScriptedJob:
    """A Popen-like job that plays its history against the fake clock."""

    def __init__(self, pid: int, history: Sequence[Event], log: IO[bytes], clock: FakeClock) -> None:
        self.pid = pid
        self.pending = list(history)
        self.log = log
        self.clock = clock
        self.t0 = clock.now
        self.returncode: int | None = None
        self.signals: list[str] = []

    def _play(self, until: float) -> None:
        while self.returncode is None and self.pending and self.pending[0][0] <= until:
            _, action = self.pending.pop(0)
            if isinstance(action, Exit):
                self.returncode = action.code
            elif isinstance(action, str):
                self.log.write((action + "\n").encode())
            else:
                action()

    def poll(self) -> int | None:
        self._play(self.clock.now - self.t0)
        return self.returncode

    def wait(self) -> int:
        self._play(float("inf"))  # a job left alone runs its history to the end
        assert self.returncode is not None, "a history must end in Exit"
        return self.returncode

    def terminate(self) -> None:
        self.signals.append("SIGTERM")
        if self.returncode is None:
            self.returncode = -15


class Spawner:
    """Hands out one scripted job per start; a history given as an OSError fails the start."""

    def __init__(self, clock: FakeClock, *histories: Sequence[Event] | OSError) -> None:
        self.clock = clock
        self.histories = list(histories)
        self.jobs: list[ScriptedJob] = []
        self.calls: list[tuple[list[str], dict[str, str], str | None]] = []

    def __call__(self, argv: Sequence[str], *, env: dict[str, str], cwd: str | None, stdout: IO[bytes]) -> ScriptedJob:
        self.calls.append((list(argv), env, cwd))
        history = self.histories.pop(0)
        if isinstance(history, OSError):
            raise history
        job = ScriptedJob(4000 + len(self.jobs), history, stdout, self.clock)
        self.jobs.append(job)
        return job


class FakeSweep:
    """The run-wide process operations over the scripted jobs (tagged = not yet exited)."""

    def __init__(self, spawner: Spawner) -> None:
        self.spawner = spawner
        self.terminated: list[tuple[str | None, int | None, float]] = []

    def tagged_pids(self, tag: str | None) -> set[int]:
        return {j.pid for j in self.spawner.jobs if j.poll() is None}

    def wait_gone(self, tag: str | None, timeout: float) -> set[int]:
        return self.tagged_pids(tag)

    def terminate_run(self, tag: str | None, pgid: int | None, grace: float) -> set[int]:
        self.terminated.append((tag, pgid, grace))
        for job in self.spawner.jobs:
            if job.poll() is None:
                job.terminate()
        return set()


def step(s: int, total: int = 5) -> str:
    return json.dumps({"zerodeck": "step", "step": s, "total_steps": total, "loss": 6.0 - s / 2, "lr": 0.001,
                       "samples_per_s": 40.0, "tokens_per_s": 2560.0, "peak_mem_mb": 200.0, "rank": 0, "t": s * 0.1})


DONE = json.dumps({"zerodeck": "done", "steps": 5, "train_runtime": 0.5, "train_loss": 4.5, "samples_per_s": 40.0,
                   "tokens_per_s": 2560.0})


@pytest.fixture(autouse=True)
def no_real_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(_seconds: float) -> None:
        raise AssertionError("the scripted supervisor slept in real time")

    monkeypatch.setattr(time, "sleep", refuse)


class Harness:
    def __init__(self, tmp: Path, *histories: Sequence[Event] | OSError, retries: int = 0,
                 output_dir: str | None = None) -> None:
        self.store = Store.open(f"sqlite:///{tmp / 'scripted.db'}")
        path = ROOT / "recipes" / "demo-cpu-zero0.toml"
        self.run_id = create_run(self.store, load_recipe_file(path), path)
        self.run_dir = tmp / "runs" / str(self.run_id)
        self.run_dir.mkdir(parents=True)
        self.log = self.run_dir / "run.log"
        self.log.touch()
        self.store.update_run(self.run_id, workdir=str(self.run_dir), log_path=str(self.log),
                              summary={"host": {"hostname": "h"}})
        self.spec = JobSpec(argv=("train", "--fast"), env={"ZERODECK_RUN_ID": str(self.run_id)}, cwd=None,
                            device="cpu", visible_devices=(0,), retries=retries, world_size=1, python=sys.executable,
                            output_dir=output_dir, validate_ds_config=False, store_url=self.store.url)
        self.clock = FakeClock()
        self.spawner = Spawner(self.clock, *histories)
        self.sweep = FakeSweep(self.spawner)
        self.sup = Supervisor(self.store, self.run_id, self.spec, spawn=self.spawner, monotonic=self.clock.monotonic,
                              sleep=self.clock.sleep, sweep=self.sweep, make_recorder=None)

    def record(self) -> Any:
        run = self.store.run(self.run_id)
        assert run is not None
        return run


def test_job_that_writes_its_steps_and_done_line_succeeds_with_points(tmp_path: Path) -> None:
    history: list[Event] = [(0.5 * s, step(s)) for s in range(1, 6)]
    history += [(3.0, DONE), (3.2, Exit(0))]
    h = Harness(tmp_path, history)
    h.sup.run()
    run = h.record()
    assert (run.status, run.outcome, run.exit_code) == ("finished", "succeeded", 0)
    assert run.steps_done == 5 and run.steps_total == 5 and run.final_loss == 3.5
    assert run.train_runtime_s == 0.5 and run.tokens_per_s == 2560.0
    assert run.pgid == h.spawner.jobs[0].pid and run.started_at is not None and run.ended_at is not None
    assert run.summary["host"] == {"hostname": "h"}  # what the launcher recorded is kept
    assert [p.step for p in h.store.metrics(h.run_id)] == [1, 2, 3, 4, 5]
    (argv, env, cwd), = h.spawner.calls
    assert argv == ["train", "--fast"] and env["ZERODECK_RUN_ID"] == str(h.run_id) and cwd is None
    assert "finished: succeeded" in h.log.read_text()
    assert h.sweep.terminated == []


# A real LLaMA-Factory console (ZeRO-3, 2 CPU ranks): `Training completed`, rank 0 starts saving the final
# model into the output directory, rank 1 aborts at teardown (SIGABRT), torchrun ends rank 0, exit 1.
TEARDOWN = FIXTURES / "logs" / "run_lf095_ds0198_zero3_cpu_teardown_sigabrt_before_metrics.log"


@pytest.mark.parametrize("saved", [True, False], ids=["final-model-saved", "killed-while-saving"])
def test_a_rank_aborting_at_teardown_is_a_success_only_with_the_final_model_on_disk(tmp_path: Path,
                                                                                    saved: bool) -> None:
    history: list[Event] = []
    run_dir = tmp_path / "runs" / "1"
    h = Harness(tmp_path, history, output_dir=str(run_dir / "output"))
    assert h.run_dir == run_dir
    lines = TEARDOWN.read_text(encoding="utf-8").replace("<run_dir>", str(run_dir)).splitlines()
    history += [(0.001 * i, line) for i, line in enumerate(lines)] + [(0.001 * len(lines) + 0.1, Exit(1))]
    out = run_dir / "output"
    ckpt = out / "checkpoint-6"
    (ckpt / "global_step6").mkdir(parents=True)
    for f in ("trainer_state.json", "adapter_model.safetensors", "global_step6/bf16_zero_pp_rank_0_optim_states.pt"):
        (ckpt / f).write_text("{}")
    if saved:
        (out / "adapter_model.safetensors").write_text("weights")
    h.sup.run()
    run = h.record()
    assert run.exit_code == 1
    if saved:
        assert (run.outcome, run.reason) == (
            "succeeded", "finished (training completed; a rank then aborted while shutting down)")
    else:
        assert run.outcome == "failed"
        assert run.reason == (f"training completed, but the final model was not written to {out} "
                                      "(the job ended while saving it); the newest complete checkpoint is "
                                      "checkpoint-6")


def test_the_output_files_give_each_point_its_step(tmp_path: Path) -> None:
    """A real LLaMA-Factory console whose last loss dict came while tqdm's bar still showed the step
    before: read alone, step 6's loss landed on step 5 and step 6 had none. The run's
    trainer_log.jsonl and trainer_state.json (copied beside it) name each step; what is stored is theirs."""
    import shutil

    history: list[Event] = []
    run_dir = tmp_path / "runs" / "1"
    h = Harness(tmp_path, history, output_dir=str(run_dir / "output"))
    console = (FIXTURES / "logs" / "run_lf095_ds0198_zero3_cpu_eval_stale_bar.log").read_text(encoding="utf-8")
    bar6 = re.search(r"\| 6/6 \[[^\]]*it/s\]", console)
    assert bar6 is not None and console.index("{'loss': '5.944'") < bar6.start()  # the dict before the bar's 6/6
    lines = console.replace("<run_dir>", str(run_dir)).splitlines()
    history += [(0.001 * i, line) for i, line in enumerate(lines)] + [(0.001 * len(lines) + 0.1, Exit(0))]
    shutil.copytree(FIXTURES / "llamafactory" / "stale_bar_output", run_dir / "output")
    h.sup.run()
    state = json.loads((run_dir / "output" / "trainer_state.json").read_text())
    logged = {e["step"]: (e["loss"], e["grad_norm"]) for e in state["log_history"] if "loss" in e}
    stored = {p.step: (p.loss, p.grad_norm) for p in h.store.metrics(h.run_id)}
    assert stored == logged and sorted(stored) == [1, 2, 3, 4, 5, 6]
    assert h.record().outcome == "succeeded"


def test_a_job_that_saves_no_final_model_is_not_judged_by_one(tmp_path: Path) -> None:
    """The built-in trainer's `done` line, then a teardown abort: nothing is saved into the output
    directory itself, and none is asked for."""
    from zerodeck.core.launch.outcome_bridge import final_model_check
    from zerodeck.core.outcome.classify import diagnose

    text = (FIXTURES / "logs" / "run_zerodeck_builtin_zero3_teardown_sigabrt.log").read_text(encoding="utf-8")
    d = diagnose(text, exit_code=1)
    assert d.outcome == "succeeded" and final_model_check(d, 1, text, str(tmp_path / "output")) == d
    lf = TEARDOWN.read_text(encoding="utf-8").replace("<run_dir>", str(tmp_path))
    d = diagnose(lf, exit_code=1)
    assert d.outcome == "succeeded"
    assert final_model_check(d, 1, lf, str(tmp_path / "output")).outcome == "failed"
    assert final_model_check(d, 0, lf, str(tmp_path / "output")) == d  # it exited 0: the save finished
    assert final_model_check(d, 1, lf, str(tmp_path / "elsewhere")) == d


def test_progress_reaches_the_store_while_the_job_runs(tmp_path: Path) -> None:
    seen: list[int | None] = []
    h: Harness

    def look() -> None:
        seen.append(h.record().steps_done)

    h = Harness(tmp_path, [(0.5, step(1)), (1.0, step(2)), (4.0, look), (5.0, DONE), (5.1, Exit(0))])
    h.sup.run()
    assert seen == [2] and h.record().status == "finished"


def test_job_killed_by_signal_9_is_recorded_host_oom(tmp_path: Path) -> None:
    h = Harness(tmp_path, [(0.5, step(1)), (1.5, Exit(-9))])
    h.sup.run()
    run = h.record()
    assert (run.outcome, run.outcome_device, run.outcome_code, run.exit_code) == ("oom", "host", "-9", -9)
    assert "SIGKILL" in (run.reason or "")
    assert run.steps_done == 1


def test_stop_requested_in_the_store_terminates_the_job(tmp_path: Path) -> None:
    h: Harness

    def user_stops() -> None:
        h.store.request_stop(h.run_id)

    h = Harness(tmp_path, [(0.5, step(1)), (2.0, user_stops), (600.0, DONE), (600.0, Exit(0))])
    h.sup.run()
    job = h.spawner.jobs[0]
    assert job.signals == ["SIGTERM"]
    assert h.sweep.terminated == [(str(h.run_dir), job.pid, GRACE_S)]
    assert h.clock.now < 10  # ended on request, not by the job's own history
    run = h.record()
    assert (run.status, run.outcome, run.reason, run.exit_code) == ("finished", "killed", "stopped on request", -15)
    assert "stop requested" in h.log.read_text()


def test_stop_signal_to_the_supervisor_ends_the_job_too(tmp_path: Path) -> None:
    h: Harness

    def sigterm() -> None:
        h.sup.stop_signalled = True

    h = Harness(tmp_path, [(1.0, sigterm), (600.0, Exit(0))])
    h.sup.run()
    assert h.spawner.jobs[0].signals == ["SIGTERM"] and h.record().outcome == "killed"


def test_stop_before_the_start_starts_nothing(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.store.request_stop(h.run_id)
    h.sup.run()
    run = h.record()
    assert (run.outcome, run.reason) == ("killed", "stopped before it started") and h.spawner.calls == []


def test_transient_start_failure_is_retried_and_logged(tmp_path: Path) -> None:
    first: list[Event] = [(0.3, FLAKE), (0.6, Exit(1))]
    second: list[Event] = [(0.5, step(1, 1)), (1.0, DONE), (1.2, Exit(0))]
    h = Harness(tmp_path, first, second, retries=1)
    h.sup.run()
    run = h.record()
    assert run.outcome == "succeeded" and run.attempts == 2 and len(h.spawner.calls) == 2
    (entry,) = run.attempts_log
    assert entry["attempt"] == 1 and entry["exit_code"] == 1 and entry["retried"]
    assert entry["outcome"] == "comm_error"
    assert "attempt 2" in h.log.read_text()


def test_transient_failure_with_no_retry_left_is_comm_error(tmp_path: Path) -> None:
    flaky: list[Event] = [(0.3, FLAKE), (0.6, Exit(1))]
    h = Harness(tmp_path, flaky, flaky, retries=1)
    h.sup.run()
    run = h.record()
    assert run.outcome == "comm_error" and run.attempts == 2 and len(run.attempts_log) == 1


def test_failure_after_progress_is_not_retried(tmp_path: Path) -> None:
    h = Harness(tmp_path, [(0.5, step(1)), (1.0, FLAKE), (1.5, Exit(1))], retries=2)
    h.sup.run()
    run = h.record()
    assert run.attempts == 1 and run.attempts_log == () and len(h.spawner.calls) == 1


def test_a_job_that_cannot_start_is_recorded_failed(tmp_path: Path) -> None:
    h = Harness(tmp_path, FileNotFoundError(2, "No such file or directory"))
    h.sup.run()
    run = h.record()
    assert (run.outcome, run.reason, run.exit_code) == ("failed", "cannot start train: No such file or directory", None)


def test_adopted_job_is_watched_until_its_processes_are_gone(tmp_path: Path) -> None:
    h = Harness(tmp_path, [(2.0, step(5)), (2.5, DONE), (3.0, Exit(0))])
    with open(h.log, "ab", buffering=0) as log:  # a job the vanished supervisor had started
        h.spawner(["train"], env={}, cwd=None, stdout=log)
        h.sup.adopt()
    run = h.record()
    assert run.outcome == "succeeded" and run.steps_done == 5
    assert "re-adopted" in h.log.read_text()


def test_adopted_job_that_ends_without_a_completion_marker_is_lost(tmp_path: Path) -> None:
    # Neither an error nor the end of training in the log, and no exit status seen: nothing can be told.
    h = Harness(tmp_path, [(2.0, step(1)), (3.0, Exit(0))])
    with open(h.log, "ab", buffering=0) as log:
        h.spawner(["train"], env={}, cwd=None, stdout=log)
        h.sup.adopt()
    run = h.record()
    assert run.outcome == "lost" and run.exit_code is None
    assert "re-adopted; the log shows neither an error nor the end of training" in (run.reason or "")
    assert run.steps_done == 1  # its points are kept all the same


def test_adopted_success_claims_no_exit_status_it_never_saw(tmp_path: Path) -> None:
    h = Harness(tmp_path, [(1.0, step(5)), (1.5, DONE), (2.0, Exit(0))])
    with open(h.log, "ab", buffering=0) as log:
        h.spawner(["train"], env={}, cwd=None, stdout=log)
        h.sup.adopt()
    run = h.record()
    assert (run.outcome, run.exit_code) == ("succeeded", None)
    assert "exit status" not in (run.reason or "") and "exit status" not in h.log.read_text()
    assert "completion marker" in (run.reason or "")


def test_adopted_job_that_failed_is_recorded_with_its_diagnosis(tmp_path: Path) -> None:
    oom = "[rank1]: RuntimeError: DefaultCPUAllocator: can't allocate memory"
    h = Harness(tmp_path, [(1.0, step(1)), (1.5, oom), (2.0, Exit(1))])
    with open(h.log, "ab", buffering=0) as log:
        h.spawner(["train"], env={}, cwd=None, stdout=log)
        h.sup.adopt()
    run = h.record()
    assert (run.outcome, run.outcome_device, run.outcome_rank) == ("oom", "cpu", 1)


class PeakRecorder:
    """A recorder that stores one card peak when it stops, as the real one does through the store."""

    def __init__(self, sup: Supervisor, peak_mb: float) -> None:
        self.sup = sup
        self.peak_mb = peak_mb
        self.started = False
        self.seeded: list[Any] = []

    def start(self) -> None:
        self.started = True
        self.seeded = self.sup.store.card_peaks(self.sup.run_id)

    def stop(self, failed: bool) -> None:
        from zerodeck.store.records import CardPeakRecord

        old = max((p.peak_mb or 0 for p in self.seeded), default=0)
        self.sup.store.replace_telemetry(self.sup.run_id, [], [CardPeakRecord("npu-smi", "0", max(old, self.peak_mb))])


def test_adopting_supervisor_records_card_peaks_through_its_recorder(tmp_path: Path) -> None:
    from zerodeck.store.records import CardPeakRecord

    h = Harness(tmp_path, [(1.0, step(5)), (1.5, DONE), (2.0, Exit(0))])
    # What the first supervisor's recorder checkpointed before it was killed.
    h.store.replace_telemetry(h.run_id, [], [CardPeakRecord("npu-smi", "0", 30_000.0, 3_000.0, 65_536.0)])
    recorders: list[PeakRecorder] = []

    def make(sup: Supervisor) -> PeakRecorder:
        recorders.append(PeakRecorder(sup, 20_000.0))
        return recorders[-1]

    h.sup.make_recorder = make
    with open(h.log, "ab", buffering=0) as log:
        h.spawner(["train"], env={}, cwd=None, stdout=log)
        h.sup.adopt()
    assert recorders and recorders[0].started
    run = h.record()
    assert run.outcome == "succeeded" and run.measured_peak_gib == round(30_000 / 1024, 3)
    assert [(p.card, p.peak_mb) for p in h.store.card_peaks(h.run_id)] == [("0", 30_000.0)]


def test_the_real_recorder_of_an_adopter_starts_from_the_stored_peaks(tmp_path: Path) -> None:
    from zerodeck.store.records import CardPeakRecord

    h = Harness(tmp_path)
    h.store.replace_telemetry(h.run_id, [], [CardPeakRecord("cpu", "rank0", 900.0, 100.0, None)])
    h.sup.adopting = True
    recorder = sup_mod.telemetry_recorder(h.sup)
    assert recorder.peaks[("cpu", "rank0")]["peak_mb"] == 900.0  # type: ignore[attr-defined]


def test_disk_filling_up_stops_the_job_and_records_no_space(tmp_path: Path) -> None:
    free = {"bytes": 10 << 30}

    def disk_fills() -> None:
        free["bytes"] = 4096

    h = Harness(tmp_path, [(0.5, step(1)), (2.0, disk_fills), (600.0, DONE), (600.0, Exit(0))])
    h.sup.free_bytes = lambda: free["bytes"]  # type: ignore[method-assign]
    h.sup.run()
    job = h.spawner.jobs[0]
    assert job.signals == ["SIGTERM"] and h.clock.now < 10
    run = h.record()
    assert run.status == "finished" and run.outcome == "failed"
    assert (run.reason or "").startswith("no space left on /")
    assert h.log.read_text().rstrip().endswith(f"finished: failed ({run.reason})")
    assert not (h.run_dir / sup_mod.RESERVE_FILE).exists()


def test_a_full_disk_before_the_start_starts_nothing(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.sup.free_bytes = lambda: 0  # type: ignore[method-assign]
    h.sup.run()
    run = h.record()
    assert run.outcome == "failed" and "no space left on" in (run.reason or "") and h.spawner.calls == []


def test_reserve_is_kept_while_the_job_runs_and_given_back_after(tmp_path: Path) -> None:
    seen: list[bool] = []
    h: Harness
    h = Harness(tmp_path, [(0.5, lambda: seen.append((h.run_dir / sup_mod.RESERVE_FILE).exists())),
                           (1.0, DONE), (1.2, Exit(0))])
    h.sup.run()
    assert seen == [True] and not (h.run_dir / sup_mod.RESERVE_FILE).exists()


def test_unexpected_error_in_the_supervisor_ends_the_job_and_records_it(tmp_path: Path) -> None:
    def bug() -> None:
        raise ZeroDivisionError("division by zero")

    h = Harness(tmp_path, [(0.5, step(1)), (1.0, bug), (600.0, Exit(0))])
    try:
        h.sup.run()
    except ZeroDivisionError as exc:
        sup_mod.last_resort(h.sup, exc)
    else:
        raise AssertionError("the scripted bug did not surface")
    run = h.record()
    assert (run.status, run.outcome) == ("finished", "failed")
    assert run.reason == "internal error: ZeroDivisionError: division by zero"
    assert h.spawner.jobs[0].signals == ["SIGTERM"]  # no job is left running unwatched
    assert "supervisor error: internal error: ZeroDivisionError" in h.log.read_text()


def test_supervisor_module_reads_its_store_from_the_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness(tmp_path)
    h.spec.write(h.run_dir)
    monkeypatch.setenv("ZERODECK_DB", "sqlite:///" + str(tmp_path / "elsewhere.db"))  # never consulted
    spec, store = sup_mod.open_spec_and_store(h.run_dir, adopt=False)
    assert spec == h.spec and store.url == h.store.url


def test_an_adopted_run_without_a_usable_spec_uses_the_store_its_spawner_named(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zerodeck.core.launch.spec import SPEC_FILE, SpecError

    h = Harness(tmp_path)
    monkeypatch.setenv("ZERODECK_DB", h.store.url)  # what api.spawn_supervisor gives an adopting child
    assert sup_mod.open_spec_and_store(h.run_dir, adopt=True)[0] is None
    (h.run_dir / SPEC_FILE).write_text('{"argv": ["old"]}')  # an older zerodeck's spec
    spec, store = sup_mod.open_spec_and_store(h.run_dir, adopt=True)
    assert spec is None and store.url == h.store.url
    with pytest.raises(SpecError, match="missing"):
        sup_mod.open_spec_and_store(h.run_dir, adopt=False)  # a new run never starts from a guess


def test_a_busy_store_during_the_watch_loses_no_points_and_keeps_the_job(tmp_path: Path) -> None:
    from zerodeck.store.errors import StoreBusy

    h = Harness(tmp_path, [(0.5, step(1)), (1.5, step(2)), (3.0, step(3)), (4.0, DONE), (4.2, Exit(0))])
    real = h.store.upsert_metrics
    busy = {"left": 2}

    def flaky(run_id: int, points: Any) -> None:
        if busy["left"]:
            busy["left"] -= 1
            raise StoreBusy("scripted.db: the database is locked by another process; try again in a moment")
        real(run_id, points)

    h.store.upsert_metrics = flaky  # type: ignore[method-assign]
    h.sup.run()
    run = h.record()
    assert busy["left"] == 0 and run.outcome == "succeeded" and h.spawner.jobs[0].signals == []
    assert [p.step for p in h.store.metrics(h.run_id)] == [1, 2, 3]
