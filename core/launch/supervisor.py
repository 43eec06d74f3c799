"""The process that owns one run from start to outcome, detached from any terminal.

Started by `api.start_run` as `python -m zerodeck.core.launch.supervisor RUN_ID` in a session of
its own with stdin/stdout on /dev/null, so a closed SSH session, a SIGHUP to the CLI or a quit TUI
never reaches it. It starts the job in its own process group with stdout+stderr going to the run's
log file, records each state change and the metric points in the store, polls
`Run.stop_requested`, and records how the job ended. `--adopt` watches a job whose first
supervisor vanished (the reconciler starts it) until its processes are gone.

Kept light on purpose (stdlib, psutil, the store): it never imports torch or deepspeed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from zerodeck.core.launch import procs
from zerodeck.core.launch.environment import RUN_ID_VAR, RUN_TAG
from zerodeck.core.launch.outcome_bridge import (
    MetricsReader,
    Verdict,
    diagnose_text,
    is_transient,
    llamafactory_results,
)

SPEC_FILE = "launch.json"
GRACE_S = 8.0  # between SIGTERM and SIGKILL on stop
POLL_S = 0.5
STORE_POLL_S = 1.0
PIDS_TTL_S = 5.0


class Supervisor:
    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self.stop_signalled = False
        from zerodeck.store.engine import open_store

        self.session = open_store()
        run = self._run()
        self.run_dir = Path(run.workdir or ".")
        self.log_path = Path(run.log_path or self.run_dir / "run.log")
        self.tag = str(self.run_dir)  # what every job process carries in ZERODECK_RUN_TAG
        self.spec: dict[str, Any] = {}
        self.reader = MetricsReader()
        self.log_offset = 0
        self.pgid: int | None = None
        self.points = 0
        self._pids: set[int] = set()
        self._pids_at = -1e9

    # -- store helpers ------------------------------------------------------------------------------
    def _run(self) -> Any:
        from zerodeck.store.queries import get_run

        self.session.expire_all()
        run = get_run(self.session, self.run_id)
        if run is None:
            raise SystemExit(f"run {self.run_id} is not in the store")
        return run

    def update(self, **fields: Any) -> None:
        from zerodeck.store.queries import update_run

        update_run(self.session, self.run_id, **fields)

    def stop_wanted(self) -> bool:
        return self.stop_signalled or bool(self._run().stop_requested)

    # -- the life of a run ------------------------------------------------------------------------
    def run(self) -> None:
        self.spec = json.loads((self.run_dir / SPEC_FILE).read_text())
        self.update(status="starting", supervisor_pid=os.getpid())
        problem = self._validate()
        if problem:
            self.finish(Verdict("failed", problem), exit_code=None)
            return
        retries = int(self.spec.get("retries", 0))
        attempts_log: list[dict[str, Any]] = []
        for attempt in range(1, retries + 2):
            if self.stop_wanted():
                self.finish(Verdict("killed", "stopped before it started"), exit_code=None)
                return
            start = self.log_path.stat().st_size if self.log_path.exists() else 0
            rc, killed = self._attempt(attempt)
            if rc is None and not killed:
                return  # could not start at all; already recorded
            text = self._log_text(start)
            if killed:
                verdict = diagnose_text(text, rc, stopped_by_user=True)
                self.finish(Verdict("killed", "stopped on request", verdict.device, verdict.code, verdict.rank,
                                    verdict.excerpt), exit_code=rc, text=text)
                return
            verdict = diagnose_text(text, rc)
            if (verdict.outcome != "succeeded" and attempt <= retries and not self.points
                    and is_transient(text, rc)):
                attempts_log.append({"attempt": attempt, "exit_code": rc, "outcome": verdict.outcome,
                                     "reason": verdict.reason or verdict.excerpt, "retried": True,
                                     "at": time.time()})
                self.update(attempts=attempt + 1, attempts_log=attempts_log)
                self._wait_port_free()
                continue
            self.finish(verdict, exit_code=rc, text=text)
            return

    def _validate(self) -> str | None:
        if not self.spec.get("validate_ds_config"):
            return None
        from zerodeck.core.launch.ds_validate import validate_ds_config

        msg = validate_ds_config(self.run_dir / "ds_config.json", int(self.spec.get("world_size", 1)),
                                 python=self.spec.get("python"))
        return f"ds_config.json: {msg}" if msg else None

    def _attempt(self, attempt: int) -> tuple[int | None, bool]:
        env = dict(os.environ)
        env.update(self.spec["env"])
        argv = list(self.spec["argv"])
        with open(self.log_path, "ab", buffering=0) as log:
            log.write(f"# zerodeck run {self.run_id} attempt {attempt}: {json.dumps(argv)}\n".encode())
            recorder = self._recorder()
            try:
                proc = subprocess.Popen(argv, env=env, cwd=self.spec.get("cwd") or None, stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            except OSError as exc:
                if recorder is not None:
                    recorder.stop(failed=True)
                what = exc.strerror or str(exc)
                self.finish(Verdict("failed", f"cannot start {argv[0]}: {what}"), exit_code=None)
                return None, False
            self.pgid = proc.pid
            fields: dict[str, Any] = {"status": "running", "pgid": proc.pid}
            if attempt == 1:
                from zerodeck.store.models import utcnow

                fields["started_at"] = utcnow()
            self.update(**fields)
            killed = self._watch(proc, recorder)
            rc = proc.wait()
            # A launcher that exits can leave ranks from other sessions behind; none may keep a card.
            left = procs.tagged_pids(self.tag)
            if left:
                procs.terminate_run(self.tag, None, grace=3.0)
            if recorder is not None:
                recorder.stop(failed=killed or rc != 0)
        self._follow()
        return rc, killed

    def _recorder(self) -> Any:
        try:
            from zerodeck.core.telemetry.recorder import RunRecorder
        except ImportError:
            return None
        recorder = RunRecorder(self.run_id, self.spec.get("device", "cpu"), self._job_pids,
                               visible_devices=self.spec.get("visible_devices"), interval=1.0)
        try:
            recorder.start()
        except Exception as exc:  # telemetry must never stop a run
            self._note(f"telemetry unavailable: {exc}")
            return None
        return recorder

    def _job_pids(self) -> set[int]:
        """The job's process tree, for telemetry. Walking /proc costs milliseconds, so the tree is
        re-read every few seconds (ranks start once; they do not come and go)."""
        import psutil

        if not self.pgid:
            return set()
        now = time.monotonic()
        if now - self._pids_at < PIDS_TTL_S:
            return set(self._pids)
        try:
            root = psutil.Process(self.pgid)
            self._pids = {root.pid} | {c.pid for c in root.children(recursive=True)}
        except psutil.Error:
            self._pids = set()
        self._pids_at = now
        return set(self._pids)

    def _watch(self, proc: subprocess.Popen[bytes], recorder: Any) -> bool:
        last_store = 0.0
        while proc.poll() is None:
            time.sleep(POLL_S)
            now = time.monotonic()
            if now - last_store >= STORE_POLL_S:
                last_store = now
                self._follow()
                if self.stop_wanted():
                    self._note("stop requested: SIGTERM to the job, then SIGKILL after the grace period")
                    procs.terminate_run(self.tag, self.pgid, GRACE_S)
                    proc.wait()
                    return True
        return False

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
        self._store_points(self.reader.feed(data.decode("utf-8", errors="replace")))

    def _store_points(self, points: list[dict[str, Any]]) -> None:
        from zerodeck.store.queries import upsert_metrics

        if not points:
            return
        upsert_metrics(self.session, self.run_id, points)
        self.points += len(points)
        summary = self.reader.summary
        self.update(steps_done=summary.get("steps_done"), steps_total=summary.get("steps_total"),
                    final_loss=summary.get("final_loss"))

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
        procs.wait_gone(self.tag, 10.0)
        time.sleep(1.0)

    def finish(self, verdict: Verdict, *, exit_code: int | None, text: str = "") -> None:
        from zerodeck.store.models import utcnow

        fields: dict[str, Any] = {
            "status": "finished", "outcome": verdict.outcome, "reason": verdict.reason,
            "outcome_device": verdict.device, "outcome_code": verdict.code, "outcome_rank": verdict.rank,
            "outcome_excerpt": verdict.excerpt, "exit_code": exit_code, "ended_at": utcnow(),
        }
        self._store_points(self.reader.flush())
        summary = {k: v for k, v in self.reader.summary.items() if v is not None}
        out_dir = self.spec.get("output_dir")
        if out_dir and Path(out_dir).is_dir():
            lf_summary, lf_points = llamafactory_results(Path(out_dir))
            if lf_points and not self.points:
                self._store_points(lf_points)
            summary = {**summary, **lf_summary}  # the files are more exact than the console
        for key in ("steps_done", "steps_total", "final_loss", "samples_per_s", "tokens_per_s",
                    "step_time_s", "train_runtime_s"):
            if summary.get(key) is not None:
                fields[key] = summary[key]
        try:
            recorded = json.loads(self._run().summary or "{}")
        except ValueError:
            recorded = {}
        fields["summary"] = {**recorded, **summary}  # keeps the host facts recorded at launch
        self.update(**fields)
        why = f" ({verdict.reason})" if verdict.reason else ""
        self._note(f"run {self.run_id} finished: {verdict.outcome}{why}")

    # -- re-adoption --------------------------------------------------------------------------------
    def adopt(self) -> None:
        """Watch a job whose supervisor died, until its processes are gone; then classify the log."""
        self.spec = json.loads((self.run_dir / SPEC_FILE).read_text()) if (self.run_dir / SPEC_FILE).exists() else {}
        self.pgid = self._run().pgid
        self.update(supervisor_pid=os.getpid())
        self._note("supervisor re-adopted the run")
        killed = False
        while procs.tagged_pids(self.tag):
            self._follow()
            if self.stop_wanted():
                live = procs.tagged_pids(self.tag)
                procs.terminate_run(self.tag, self.pgid if self.pgid in live else None, GRACE_S)
                killed = True
                break
            time.sleep(STORE_POLL_S)
        self._follow()
        text = self._log_text(0)
        if killed:
            self.finish(Verdict("killed", "stopped on request"), exit_code=None)
            return
        done = '"zerodeck": "done"' in text
        verdict = diagnose_text(text, 0 if done else None)
        if verdict.outcome == "succeeded" and not done:
            verdict = Verdict("lost", "re-adopted; the job ended without a visible exit code")
        self.finish(verdict, exit_code=None)


def _on_stop(sup: Supervisor) -> Any:
    def handler(signum: int, _frame: Any) -> None:
        sup.stop_signalled = True

    return handler


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    run_id = int(args[0])
    for var in (RUN_TAG, RUN_ID_VAR):
        os.environ.pop(var, None)  # the supervisor itself is not one of the job's processes
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    sup = Supervisor(run_id)
    signal.signal(signal.SIGTERM, _on_stop(sup))
    signal.signal(signal.SIGINT, _on_stop(sup))
    try:
        if "--adopt" in args:
            sup.adopt()
        else:
            sup.run()
    except Exception as exc:  # record, never vanish silently
        sup._note(f"supervisor error: {type(exc).__name__}: {exc}")
        with contextlib.suppress(Exception):
            sup.finish(Verdict("failed", f"supervisor error: {type(exc).__name__}: {exc}"), exit_code=None)
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
