"""The process that owns one run from start to outcome, detached from any terminal.

Started by `api.spawn_supervisor` as `python -m zerodeck.core.launch.supervisor RUN_ID --run-dir DIR`
in a session of its own with stdin/stdout on /dev/null, so a closed SSH session, a SIGHUP to the
CLI or a quit TUI never reaches it. It reads the run's `JobSpec` (which names its store), starts
the job in its own process group with stdout+stderr going to the run's log file, records each
state change and the metric points in the store, polls the run's stop request, and records how
the job ended. It writes through a `SpooledStore` (spool.py): while the database cannot be reached
the job goes on and the writes wait on disk in the run directory, in order, until it is back; the
supervisor does not exit before they have landed. `--adopt` watches a job whose first supervisor
vanished (the reconciler starts it) until its processes are gone; `conclude` judges a run none of
whose processes is left by its log, for the adopter and for the reconciler alike.

It never leaves a run `running` behind it: the run directory's disk is checked every second (a
small reserve file is given back when it fills, so the last log line and the record still fit)
and a full disk ends the job as `failed: no space left on PATH`; any unexpected error ends the
job and records `failed: internal error: ...` (`last_resort`).

`Supervisor` takes its collaborators (the store, how a job starts, the clock, sleep, the process
sweep, telemetry) as arguments with real defaults, so tests drive it with scripted process
histories and a fake clock. Kept light on purpose (stdlib, psutil, the store): it never imports
torch or deepspeed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Protocol, cast

import psutil
from zerodeck.core.launch import procs
from zerodeck.core.launch.environment import RUN_ID_VAR, RUN_TAG
from zerodeck.core.launch.outcome_bridge import final_model_check, is_transient, llamafactory_results, verdict
from zerodeck.core.launch.spec import JobSpec, SpecError
from zerodeck.core.launch.spool import SPOOL_FILE, TRANSIENT, SpooledStore
from zerodeck.core.launch.watchdog import StallWatch, WatchConfig, minutes
from zerodeck.core.outcome.classify import Diagnosis, diagnose
from zerodeck.core.outcome.metrics import MetricsFollower
from zerodeck.core.telemetry.recorder import RunRecorder
from zerodeck.store.api import FinishFields, LeaseLost, Store
from zerodeck.store.models import utcnow

GRACE_S = 8.0  # between SIGTERM and SIGKILL on stop
POLL_S = 0.5
STORE_POLL_S = 1.0
# The job's process tree is re-read at most this often: once per telemetry poll (1 s), shared by that
# poll's callers. Launchers fork their ranks seconds after the start, and a short run's ranks live only
# seconds: a longer cache missed the ranks forked after the tree was read, or the whole of their lives.
PIDS_TTL_S = 0.5
# An adopted run's ranks are running already; finding them by tag reads every process's environment.
ADOPTED_PIDS_TTL_S = 5.0
PORT_SETTLE_S = 1.0  # after a failed attempt's processes are gone, before the retry binds its port
# Below this much free space on the run directory's file system the log can no longer grow: the job
# is stopped and the run recorded failed. The reserve file is given back first, so the last log line
# and (when the store shares that disk) the final record still fit.
LOW_SPACE_BYTES = 256 * 1024
RESERVE_BYTES = 128 * 1024
RESERVE_FILE = ".zerodeck-reserve"
# Before the first step, cards count as alive when busy or when their memory moved this much.
BUSY_PCT = 5.0
MEMORY_MOVE_MB = 64.0
SUMMARY_FIELDS = ("steps_done", "steps_total", "final_loss", "samples_per_s", "tokens_per_s", "step_time_s",
                  "train_runtime_s")

__all__ = ["Supervisor", "main"]


class Job(Protocol):
    """What the supervisor needs of a started job (a `subprocess.Popen` is one)."""

    @property
    def pid(self) -> int: ...

    def poll(self) -> int | None: ...

    def wait(self) -> int: ...


class Spawn(Protocol):
    def __call__(self, argv: Sequence[str], *, env: dict[str, str], cwd: str | None, stdout: IO[bytes]) -> Job: ...


class ProcessSweep(Protocol):
    """Every process of a run, found by its tag (`procs.Sweep` is the real one)."""

    def tagged_pids(self, tag: str | None) -> set[int]: ...

    def wait_gone(self, tag: str | None, timeout: float) -> set[int]: ...

    def terminate_run(self, tag: str | None, pgid: int | None, grace: float) -> set[int]: ...


class Recorder(Protocol):
    def start(self) -> None: ...

    def stop(self, failed: bool) -> None: ...


RecorderFactory = Callable[["Supervisor"], Recorder]


def start_job(argv: Sequence[str], *, env: dict[str, str], cwd: str | None, stdout: IO[bytes]) -> Job:
    """The job in a session of its own (so a stop can signal its whole group), output to the log."""
    return subprocess.Popen(list(argv), env=env, cwd=cwd or None, stdin=subprocess.DEVNULL, stdout=stdout,
                            stderr=subprocess.STDOUT, start_new_session=True)


def telemetry_recorder(sup: Supervisor) -> Recorder:

    spec = sup.spec
    recorder = RunRecorder(sup.store, sup.run_id, spec.device if spec else "cpu", sup.job_pids,
                           visible_devices=list(spec.visible_devices) if spec else None, interval=1.0)
    if sup.adopting:
        # The recorder replaces the run's peaks when it writes: start from what the first
        # supervisor stored, so a re-adopted run keeps the peaks of its whole life.
        for peak in sup.store.card_peaks(sup.run_id):
            recorder.peaks[(peak.source, peak.card)] = {
                "peak_mb": peak.peak_mb, "baseline_mb": peak.baseline_mb, "total_mb": peak.total_mb}
    return recorder


def mount_point(path: Path) -> Path:
    """The mount point of the file system holding `path` (what `no space left on` names)."""
    path = path.resolve()
    while not os.path.ismount(path) and path.parent != path:
        path = path.parent
    return path


class Supervisor:
    def __init__(self, store: Store, run_id: int, spec: JobSpec | None, *, spawn: Spawn = start_job,
                 monotonic: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 sweep: ProcessSweep | None = None, make_recorder: RecorderFactory | None = telemetry_recorder
                 ) -> None:
        self.run_id = run_id
        self.spec = spec
        self.spawn = spawn
        self.monotonic = monotonic
        self.sleep = sleep
        self.sweep: ProcessSweep = sweep or procs.Sweep()
        self.make_recorder = make_recorder
        self.stop_signalled = False
        self.signals = 0  # stop signals received: one more while settling gives up waiting for the store
        self.adopting = False
        self.no_space: str | None = None  # "no space left on PATH" once the run directory's disk is full
        run = store.run(run_id)
        if run is None:
            raise SystemExit(f"run {run_id} is not in the store")
        self.run_dir = Path(run.workdir or ".")
        self.log_path = Path(run.log_path or self.run_dir / "run.log")
        # Every write goes through the spool; one left behind by an earlier supervisor lands first.
        self.store: SpooledStore = store if isinstance(store, SpooledStore) else SpooledStore(
            store, self.run_dir / SPOOL_FILE, note=self._note, monotonic=monotonic, sleep=sleep)
        self.store.remember(run)
        self.tag = str(self.run_dir)  # what every job process carries in ZERODECK_RUN_TAG
        self.follower = MetricsFollower()
        self.log_offset = 0
        self.pgid: int | None = None
        self.points = 0
        self._pids: set[int] = set()
        self._pids_at = -1e9
        # The stall watchdog (watchdog.py): one StallWatch per attempt, fed every store tick.
        self.watch: StallWatch | None = None
        self.steps_seen: int | None = None
        self.training_over = False
        self.stall_reason: str | None = None  # "stalled for N min at step S" once on_stall = stop ended it
        self.recorder: Recorder | None = None
        self._offset_seen = 0
        self._memory_seen: float | None = None

    def stop_wanted(self) -> bool:
        return self.stop_signalled or self.store.stop_requested(self.run_id)

    # -- the life of a run ------------------------------------------------------------------------
    def run(self) -> None:
        self.store.update_run(self.run_id, status="starting", supervisor_pid=os.getpid())
        spec = self.spec
        if spec is None:
            self.finish(verdict("failed", f"no launch spec in {self.run_dir}"), exit_code=None)
            return
        problem = self._validate(spec)
        if problem:
            self.finish(verdict("failed", problem), exit_code=None)
            return
        self._reserve()
        try:
            self._run_attempts(spec)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            self.finish_no_space(exit_code=None)
        finally:
            self._release_reserve()

    def _run_attempts(self, spec: JobSpec) -> None:
        attempts_log: list[dict[str, Any]] = []
        for attempt in range(1, spec.retries + 2):
            if self.stop_wanted():
                self.finish(verdict("killed", "stopped before it started"), exit_code=None)
                return
            if self.space_problem():
                self.finish_no_space(exit_code=None)
                return
            start = self.log_path.stat().st_size if self.log_path.exists() else 0
            rc, killed = self._attempt(spec, attempt)
            if rc is None and not killed:
                return  # could not start at all; already recorded
            text = self._log_text(start)
            if self.no_space or (rc != 0 and not killed and self.space_problem()):
                # The job died of (or was stopped for) the full disk: that, not its exit status, is why.
                self.finish_no_space(exit_code=rc, text=text)
                return
            if self.stall_reason:
                self.finish(self._stall_verdict(text, rc), exit_code=rc, text=text)
                self._maybe_resume(spec, attempt, resumable=True)
                return
            if killed:
                d = diagnose(text, exit_code=rc, stopped_by_user=True)
                self.finish(dataclasses.replace(d, outcome="killed", reason="stopped on request"), exit_code=rc,
                            text=text)
                return
            d = diagnose(text, exit_code=rc)
            if (d.outcome != "succeeded" and attempt <= spec.retries and not self.points
                    and is_transient(text, rc)):
                attempts_log.append({"attempt": attempt, "exit_code": rc, "outcome": d.outcome,
                                     "reason": d.reason or d.excerpt or None, "retried": True,
                                     "at": time.time()})
                self.store.update_run(self.run_id, attempts=attempt + 1, attempts_log=attempts_log)
                self._wait_port_free()
                continue
            self.finish(d, exit_code=rc, text=text)
            self._maybe_resume(spec, attempt, resumable=d.outcome == "comm_error")
            return

    def _maybe_resume(self, spec: JobSpec, attempt: int, *, resumable: bool) -> None:
        """`[launch] retries` with `resume = true`: a comm error or a stall (never an OOM, which would
        fail again) goes on as a new run from the newest complete checkpoint, with the retries left."""
        left = spec.retries - (attempt - 1)
        if not (spec.resume and resumable and left > 0) or self.stop_wanted():
            return
        if not self.settle():  # a resume reads the store: wait for it, with the record landed first
            return
        from zerodeck.core.launch.resume import resume_run  # imports the launch API, which imports us

        try:
            new_id = resume_run(self.store, self.run_id, retries=left - 1, automatic=True)
        except Exception as exc:  # the run is recorded already; a failed resume is told, never raised
            self._note(f"automatic resume failed: {exc}")
            with contextlib.suppress(Exception):
                self.store.add_event(self.run_id, "resume_failed", {"summary": str(exc)})
            return
        self._note(f"resumed automatically as run {new_id} ({left - 1} retries left)")

    def _validate(self, spec: JobSpec) -> str | None:
        if not spec.validate_ds_config:
            return None
        from zerodeck.core.launch.ds_validate import validate_ds_config

        msg = validate_ds_config(self.run_dir / "ds_config.json", spec.world_size, python=spec.python)
        return f"ds_config.json: {msg}" if msg else None

    def _attempt(self, spec: JobSpec, attempt: int) -> tuple[int | None, bool]:
        env = {**os.environ, **spec.env}
        argv = list(spec.argv)
        with open(self.log_path, "ab", buffering=0) as log:
            log.write(f"# zerodeck run {self.run_id} attempt {attempt}: {json.dumps(argv)}\n".encode())
            recorder = self._recorder()
            try:
                job = self.spawn(argv, env=env, cwd=spec.cwd, stdout=log)
            except OSError as exc:
                if recorder is not None:
                    recorder.stop(failed=True)
                what = exc.strerror or str(exc)
                self.finish(verdict("failed", f"cannot start {argv[0]}: {what}"), exit_code=None)
                return None, False
            self.pgid = job.pid
            self.recorder = recorder
            self.watch = StallWatch(self.watch_config(), self.monotonic())
            self.stall_reason = None
            if attempt == 1:
                started = datetime.now(timezone.utc)
                self.store.update_run(self.run_id, status="running", pgid=job.pid, started_at=started)
            else:
                self.store.update_run(self.run_id, status="running", pgid=job.pid)
            killed = self._watch(job)
            rc = job.wait()
            # A launcher that exits can leave ranks from other sessions behind; none may keep a card.
            if self.sweep.tagged_pids(self.tag):
                self.sweep.terminate_run(self.tag, None, 3.0)
            if recorder is not None:
                recorder.stop(failed=killed or rc != 0)
                summary = getattr(recorder, "summary", None)
                if callable(summary):  # when a card is missing from the record, this line says what was read
                    self._note(f"telemetry: {summary()}")
        self._follow()
        return rc, killed

    def _recorder(self) -> Recorder | None:
        if self.make_recorder is None or (self.spec is not None and self.spec.scheduler == "slurm"):
            # A Slurm run's cards are on its nodes: their samplers record, the follower stores.
            return None
        try:
            recorder = self.make_recorder(self)
            recorder.start()
        except ImportError:
            return None
        except Exception as exc:  # telemetry must never stop a run
            self._note(f"telemetry unavailable: {exc}")
            return None
        return recorder

    def job_pids(self) -> set[int]:
        """The job's process tree, for telemetry: walked afresh for each poll (about a millisecond per
        hundred processes), so ranks are found in the first poll after their launcher forks them."""

        now = self.monotonic()
        if now - self._pids_at < (ADOPTED_PIDS_TTL_S if self.adopting else PIDS_TTL_S):
            return set(self._pids)
        if self.adopting:
            # The launcher that led the group may be gone while its ranks live on: find them by tag.
            self._pids = set(self.sweep.tagged_pids(self.tag))
        elif not self.pgid:
            return set()
        else:
            try:
                root = psutil.Process(self.pgid)
                self._pids = {root.pid} | {c.pid for c in root.children(recursive=True)}
            except psutil.Error:
                self._pids = set()
        self._pids_at = now
        return set(self._pids)

    def _watch(self, job: Job) -> bool:
        """Returns True when the job was stopped: on request, or because its disk filled up."""
        last_store = float("-inf")
        while job.poll() is None:
            self.sleep(POLL_S)
            now = self.monotonic()
            if now - last_store >= STORE_POLL_S:
                last_store = now
                self._follow()
                stop = self.stop_wanted()
                if self.space_problem():
                    self.no_space = self.space_problem()
                    self.sweep.terminate_run(self.tag, self.pgid, GRACE_S)
                    job.wait()
                    return False
                if stop:
                    self._note("stop requested: SIGTERM to the job, then SIGKILL after the grace period")
                    self.sweep.terminate_run(self.tag, self.pgid, GRACE_S)
                    job.wait()
                    return True
                if self._check_stall():
                    self._note(f"{self.stall_reason}: stopping the job (on_stall = stop)")
                    self.sweep.terminate_run(self.tag, self.pgid, GRACE_S)
                    job.wait()
                    return False
        return False

    # -- the stall watchdog ------------------------------------------------------------------------
    def watch_config(self) -> WatchConfig:
        spec = self.spec
        if spec is None:
            return WatchConfig()
        return WatchConfig(spec.stall_factor, spec.stall_floor_s, spec.stall_startup_s, spec.on_stall,
                           spec.stall_grace_s)

    def card_state(self) -> list[dict[str, Any]]:
        """Memory and utilisation of the run's cards in the newest telemetry reading ([] without one)."""
        cards = getattr(self.recorder, "run_cards", None)
        if cards is None:
            return []
        try:
            found = cards()
        except Exception:  # telemetry never stops a run, nor its watchdog
            return []
        return [{"card": c.key, "memory_used_mb": c.device_used_mb,
                 "memory_total_mb": c.hbm_total_mb or c.memory_total_mb, "util_pct": c.aicore_pct} for c in found]

    def _cards_alive(self, cards: list[dict[str, Any]]) -> bool:
        if any((c["util_pct"] or 0) >= BUSY_PCT for c in cards):
            return True
        used = sum(float(c["memory_used_mb"] or 0) for c in cards)
        moved = self._memory_seen is not None and abs(used - self._memory_seen) >= MEMORY_MOVE_MB
        if self._memory_seen is None or moved:
            self._memory_seen = used
        return moved

    def _check_stall(self) -> bool:
        """Feed the watchdog; record `stalled` / `progressed`. True when on_stall = stop ends the job."""
        watch = self.watch
        if watch is None or self.training_over:
            return False
        now = self.monotonic()
        alive = False
        if watch.step is None:  # before the first step any sign of life counts
            alive = self.log_offset != self._offset_seen or self._cards_alive(self.card_state())
        self._offset_seen = self.log_offset
        verdict = watch.observe(now, self.steps_seen, alive)
        if verdict is None:
            return False
        step = watch.step or 0
        idle = watch.idle_s(now)
        if verdict == "stalled":
            where = f"at step {step}" if watch.step is not None else "before the first step"
            summary = f"no progress for {minutes(idle)} min {where}"
            detail = {"summary": summary, "step": watch.step, "idle_s": round(idle, 1),
                      "limit_s": round(watch.limit_s(), 1), "cards": self.card_state()}
            self._note(f"stalled: {summary} (limit {watch.limit_s():.0f} s)")
            self._record_stall(detail)
            return False
        if verdict == "progressed":
            self._note(f"progress again at step {step}")
            self.store.update_run(self.run_id, stalled_at=None)
            self.store.add_event(self.run_id, "progressed", {"summary": f"step {step}", "step": watch.step})
            return False
        stalled_for = now - (watch.last_progress)
        self.stall_reason = f"stalled for {minutes(stalled_for)} min at step {step}"
        return True

    def _stall_verdict(self, text: str, rc: int | None) -> Diagnosis:
        """How a run stopped for a stall is recorded: with the stall as its reason."""
        d = diagnose(text, exit_code=rc)
        # Many ranks that stop stepping together are waiting in a collective: a comm error.
        ranks = self.spec.world_size if self.spec else 1
        outcome = "comm_error" if d.outcome == "comm_error" or ranks > 1 else "failed"
        return dataclasses.replace(d, outcome=outcome, reason=self.stall_reason or "stalled")

    def _record_stall(self, detail: dict[str, Any]) -> None:
        self.store.update_run(self.run_id, stalled_at=utcnow())
        self.store.add_event(self.run_id, "stalled", detail)
        self.alert("stalled")

    def alert(self, kind: str) -> None:
        """Tell the configured targets. A process of its own sends (core/alerts/send.py), never waited
        on, so a hanging target neither delays nor fails the run."""
        spec = self.spec
        if spec is None or not spec.alert_urls or kind not in spec.alert_on:
            return
        from zerodeck.core.alerts.send import spawn

        try:
            spawn(self.run_id, kind, self.run_dir)
        except OSError as exc:
            self._note(f"alert ({kind}) not sent: {exc.strerror or exc}")

    # -- the run directory's disk ----------------------------------------------------------------
    def free_bytes(self) -> int | None:
        try:
            st = os.statvfs(self.run_dir)
        except OSError:
            return None
        # root may write into the blocks reserved for it, so for root those count as free.
        return (st.f_bfree if os.geteuid() == 0 else st.f_bavail) * st.f_frsize

    def space_problem(self) -> str | None:
        """`no space left on MOUNT` when the run directory's file system is (nearly) full; a statvfs
        costs microseconds, so the watch loop asks every second."""
        free = self.free_bytes()
        if free is None or free >= LOW_SPACE_BYTES:
            return None
        return f"no space left on {mount_point(self.run_dir)}"

    def _reserve(self) -> None:
        with contextlib.suppress(OSError), open(self.run_dir / RESERVE_FILE, "wb") as fh:
            fh.write(b"\0" * RESERVE_BYTES)

    def _release_reserve(self) -> None:
        with contextlib.suppress(OSError):
            (self.run_dir / RESERVE_FILE).unlink()

    def finish_no_space(self, *, exit_code: int | None, text: str = "") -> None:
        """Record `failed: no space left on PATH`: the reserve is given back first so the last log line
        fits, and every process of the run is ended (a job writing to a full disk makes no progress)."""
        reason = self.no_space or self.space_problem() or f"no space left on {mount_point(self.run_dir)}"
        self.no_space = reason
        self._release_reserve()
        if self.sweep.tagged_pids(self.tag):
            self.sweep.terminate_run(self.tag, self.pgid, GRACE_S)
        d = diagnose(text, exit_code=exit_code) if text else verdict("failed", reason)
        self.finish(dataclasses.replace(d, outcome="failed", reason=reason), exit_code=exit_code, text=text)

    def _follow(self) -> None:
        """Read what the log gained since last time, store new metric points and progress."""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(self.log_offset)
                data = fh.read()
        except OSError:
            return
        if not data:
            return
        self.log_offset += len(data)
        points = self.follower.feed_text(data.decode("utf-8", errors="replace"))
        if points:
            self._store_points(points)
        else:  # a progress bar or status line may move the step without a metric point
            self._progress(self.follower.summary())

    def _progress(self, summary: dict[str, Any]) -> None:
        self.steps_seen = summary.get("steps_done")
        total = summary.get("steps_total")
        # Training is over (final metrics, or the last step): saving the model may take long without a step.
        self.training_over = summary.get("train_runtime_s") is not None or bool(
            total and self.steps_seen is not None and self.steps_seen >= total)

    def _store_points(self, points: list[dict[str, Any]]) -> None:
        if not points:
            return
        self.store.upsert_metrics(self.run_id, points)
        self.points += len(points)
        summary = self.follower.summary()
        self._progress(summary)
        self.store.update_run(self.run_id, steps_done=summary.get("steps_done"),
                              steps_total=summary.get("steps_total"), final_loss=summary.get("final_loss"))

    def _log_text(self, start: int) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(start)
                return fh.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def _note(self, message: str) -> None:
        try:
            with open(self.log_path, "a") as fh:
                fh.write(f"# zerodeck: {message}\n")
        except OSError:
            pass

    def _wait_port_free(self) -> None:
        self.sweep.wait_gone(self.tag, 10.0)
        self.sleep(PORT_SETTLE_S)

    def finish(self, d: Diagnosis, *, exit_code: int | None, text: str = "") -> None:
        if self.spec is not None and self.spec.scheduler == "slurm":
            from zerodeck.core.launch.slurm.result import adjust

            d = adjust(self.run_dir, d)  # Slurm's end state: TIMEOUT, NODE_FAIL, ... (states.py)
        out_dir = self.spec.output_dir if self.spec else None
        d = final_model_check(d, exit_code, text, out_dir)
        self._store_points(self.follower.flush())
        summary = {k: v for k, v in self.follower.summary().items() if v is not None}
        if out_dir and Path(out_dir).is_dir():
            lf_summary, lf_points = llamafactory_results(Path(out_dir))
            self._store_points(lf_points)  # by step, over the console's: the files know each point's step
            summary = {**summary, **lf_summary}  # the files are more exact than the console
        # Numbers the job did not report keep what the live log gave (steps_done, final_loss).
        numbers = cast(FinishFields, {key: summary[key] for key in SUMMARY_FIELDS if summary.get(key) is not None})
        run = self.store.run(self.run_id)
        recorded = run.summary if run is not None else {}
        if run is not None and run.measured_peak_gib is None:
            # Peaks the recorder checkpointed before its supervisor vanished still give the run its peak.
            device = [p.peak_mb for p in self.store.card_peaks(self.run_id)
                      if p.source not in ("host", "swap") and p.peak_mb is not None]
            if device:
                numbers["measured_peak_gib"] = round(max(device) / 1024, 3)
        fields: FinishFields = {
            **numbers, "outcome_device": d.device, "outcome_code": d.code, "outcome_rank": d.rank,
            "outcome_excerpt": d.excerpt or None, "exit_code": exit_code,
            "summary": {**recorded, **summary},  # keeps the host facts recorded at launch
        }
        # A finished run always has an outcome; diagnose gives none only when it knows nothing.
        self.store.finish_run(self.run_id, d.outcome or "failed", d.reason or None, **fields)
        why = f" ({d.reason})" if d.reason else ""
        self._note(f"run {self.run_id} finished: {d.outcome}{why}")
        self.alert("lost" if d.outcome == "lost" else "finished")

    def settle(self) -> bool:
        """Wait until every buffered write is in the store. The signal that stopped the run asked for
        its end to be recorded, so it is waited for; a stop signal received while waiting gives up
        (the spool stays in the run directory for the next supervisor or reconciler). True when none
        is left."""
        seen = self.signals
        try:
            return self.store.settle(should_stop=lambda: self.signals > seen)
        except Exception as exc:  # refused for good (the run's lease was taken over): nothing more lands
            self._note(f"buffered writes not recorded: {exc}")
            return False

    # -- re-adoption --------------------------------------------------------------------------------
    def adopt(self) -> None:
        """Watch a job whose supervisor died, until its processes are gone; then judge it by its log."""
        run = self.store.run(self.run_id)
        self.pgid = run.pgid if run is not None else None
        self.adopting = True
        self.store.update_run(self.run_id, supervisor_pid=os.getpid())
        self._note("supervisor re-adopted the run")
        self._reserve()
        recorder = self._recorder()
        if recorder is not None and run is not None and run.baseline:
            # The recorder's first reading is taken mid-run; the baseline before the job started stays.
            self.store.update_run(self.run_id, baseline=run.baseline)
        killed = False
        # The adopter watches for stalls too; the step it finds in the log counts as progress now.
        self.recorder = recorder
        self.watch = StallWatch(self.watch_config(), self.monotonic())
        try:
            while self.sweep.tagged_pids(self.tag):
                self._follow()
                self.no_space = self.space_problem()
                stalled = not self.no_space and self._check_stall()
                if self.stop_wanted() or self.no_space or stalled:
                    live = self.sweep.tagged_pids(self.tag)
                    if stalled:
                        self._note(f"{self.stall_reason}: stopping the job (on_stall = stop)")
                    self.sweep.terminate_run(self.tag, self.pgid if self.pgid in live else None, GRACE_S)
                    killed = not self.no_space and not stalled
                    break
                self.sleep(STORE_POLL_S)
        finally:
            if recorder is not None:
                failed = (killed or bool(self.no_space) or bool(self.stall_reason)
                          or diagnose(self._log_text(0)).outcome != "succeeded")
                recorder.stop(failed=failed)
            self._release_reserve()
        if killed:
            self._follow()
            self.finish(verdict("killed", "stopped on request"), exit_code=None)
            return
        if self.stall_reason:
            self._follow()
            text = self._log_text(0)
            self.finish(self._stall_verdict(text, None), exit_code=None, text=text)
            if self.spec is not None:
                self._maybe_resume(self.spec, run.attempts if run is not None else 1, resumable=True)
            return
        self.conclude("re-adopted")

    def conclude(self, how: str) -> str:
        """Record a run none of whose processes is left, from what its log proves (the path re-adoption
        ends on, and the one the reconciler takes for a run that ended while nobody watched): its metric
        points and summary, succeeded or the diagnosed failure, and `lost` only when the log tells
        nothing. No exit status was seen, so none is recorded and none is claimed. Returns the outcome."""
        if self.store.pending and self.store.drain():
            # The spool its supervisor left may have held the end: that record stands.
            replayed = self.store.run(self.run_id)
            if replayed is not None and replayed.finished:
                return replayed.outcome or "lost"
        self._follow()
        text = self._log_text(0)
        d = diagnose(text, exit_code=None)
        unknown = d.outcome is None  # the log shows neither an error nor the end of training
        # A full disk explains a log that stops short (the job could not write its error), not one
        # that says how the run ended.
        if self.no_space or (unknown and self.space_problem()):
            self.finish_no_space(exit_code=None, text=text)
            return "failed"
        if unknown:
            last = next((ln for ln in reversed(text.splitlines()) if ln.strip() and not ln.startswith("# zerodeck")),
                        "")
            why = f"{how}; the log shows neither an error nor the end of training"
            d = dataclasses.replace(d, outcome="lost", reason=why + (f"; last line: {last[:160]}" if last else ""))
        self.finish(d, exit_code=None, text=text)
        return d.outcome or "lost"


def _on_stop(sup: Supervisor) -> Any:
    def handler(signum: int, _frame: Any) -> None:
        sup.stop_signalled = True
        sup.signals += 1

    return handler


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="zerodeck-supervisor")
    p.add_argument("run_id", type=int)
    p.add_argument("--run-dir", type=Path, default=None, help="the run's directory (default: the working one)")
    p.add_argument("--adopt", action="store_true")
    return p.parse_args(argv)


def open_spec_and_store(run_dir: Path, adopt: bool) -> tuple[JobSpec | None, Store]:
    """The run's spec and the store it names. Only an adopted run may do without a usable spec (one
    recorded by an older zerodeck): its spawner named the store in this process's environment."""
    try:
        spec = JobSpec.read(run_dir)
    except SpecError:
        if not adopt:
            raise
        return None, Store.from_environment()
    return spec, Store.open(spec.store_url)


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    for var in (RUN_TAG, RUN_ID_VAR):
        os.environ.pop(var, None)  # the supervisor itself is not one of the job's processes
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    run_dir = (args.run_dir or Path.cwd()).resolve()
    try:
        sup = _first_contact(run_dir, args)
    except SpecError as exc:
        # No store to record in: the reconciler will find the run without a supervisor.
        print(f"zerodeck supervisor: run {args.run_id}: {exc}", file=sys.stderr)
        return 1
    except TRANSIENT as exc:
        print(f"zerodeck supervisor: run {args.run_id}: {exc}; giving up", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, _on_stop(sup))
    signal.signal(signal.SIGINT, _on_stop(sup))
    try:
        if args.adopt:
            sup.adopt()
        else:
            sup.run()
    except LeaseLost as exc:
        lease_lost(sup, exc)
        return 1
    except Exception as exc:
        last_resort(sup, exc)
        return 1
    finally:
        sup.settle()
    return 0


FIRST_CONTACT_S = 600.0


def _first_contact(run_dir: Path, args: argparse.Namespace) -> Supervisor:
    """Open the store and read the run, waiting out an outage (with backoff) for up to
    FIRST_CONTACT_S: nothing has started yet, and without the run's record there is nothing to do."""
    deadline = time.monotonic() + FIRST_CONTACT_S
    delay = 0.5
    while True:
        try:
            spec, store = open_spec_and_store(run_dir, args.adopt)
            return Supervisor(_fenced(store, spec, args.run_id), args.run_id, spec)
        except TRANSIENT as exc:
            if time.monotonic() + delay > deadline:
                raise
            print(f"zerodeck supervisor: run {args.run_id}: {exc}; trying again in {delay:g} s",
                  file=sys.stderr, flush=True)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)


def _fenced(store: Store, spec: JobSpec | None, run_id: int) -> Store:
    """A run made by a queue claim writes as the claim's holder: once another host takes the claim
    over (its host was judged silent), every write raises LeaseLost and lands nothing."""
    if spec is None or spec.claim_token is None:
        return store
    from zerodeck.core.errors import BadInput
    from zerodeck.core.launch.hostname import configure, host_grace
    from zerodeck.store.api import HEARTBEAT_S

    with contextlib.suppress(BadInput):  # checked by its runner's entry; the default otherwise
        configure(os.environ)  # the grace its runner was given (inherited): beat well inside it
    return store.fenced(run_id, spec.claim_token, host=spec.host, heartbeat_s=min(HEARTBEAT_S, host_grace() / 3))


def lease_lost(sup: Supervisor, exc: LeaseLost) -> None:
    """The run's claim was taken over (its host was judged silent, its cards given back): this
    supervisor records nothing more, and ends the job, whose cards the ledger no longer holds for it."""
    with contextlib.suppress(Exception):
        print(f"zerodeck supervisor: run {sup.run_id}: lease lost: {exc}", file=sys.stderr, flush=True)
    sup._note(f"lease lost, writing nothing more and stopping the job: {exc}")
    sup._release_reserve()
    with contextlib.suppress(Exception):
        if sup.sweep.tagged_pids(sup.tag):
            sup.sweep.terminate_run(sup.tag, sup.pgid, GRACE_S)


def last_resort(sup: Supervisor, exc: BaseException) -> None:
    """A supervisor that meets an unexpected error never dies silently nor leaves its job unwatched:
    it ends the job, records the run failed with the reason, and says so in its log and stderr."""
    full = isinstance(exc, OSError) and exc.errno == errno.ENOSPC
    reason = (sup.no_space or f"no space left on {mount_point(sup.run_dir)}") if full else \
        f"internal error: {type(exc).__name__}: {exc}"
    with contextlib.suppress(Exception):  # stderr is supervisor.log, which may sit on the full disk
        traceback.print_exc(file=sys.stderr)
        print(f"zerodeck supervisor: run {sup.run_id}: {reason}", file=sys.stderr, flush=True)
    sup._release_reserve()
    with contextlib.suppress(Exception):
        if sup.sweep.tagged_pids(sup.tag):
            sup.sweep.terminate_run(sup.tag, sup.pgid, GRACE_S)
    sup._note(f"supervisor error: {reason}")
    try:
        sup.finish(verdict("failed", reason), exit_code=None)
    except Exception as again:  # the store itself failed (full, read-only): the next reader reconciles
        with contextlib.suppress(Exception):
            print(f"zerodeck supervisor: run {sup.run_id}: cannot record the failure: {again}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
