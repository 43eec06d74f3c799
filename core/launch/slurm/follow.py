"""The local half of a Slurm run: what the supervisor starts in place of the job.

`python -m zerodeck.core.launch.slurm.follow --run-dir DIR --run-id N --cache FILE ...` submits
the run's `slurm.sbatch` (`sbatch --parsable`), then follows the job through the shared batched
query (`queue.SharedQueue`): it records the job's state in the `slurm_job` row (PENDING with its
reason, RUNNING, the end state), the queue wait apart from the run time, streams every node's log
into its own output (which is the run's log: node 0's lines as they are, so the supervisor's
metrics follower and outcome diagnosis read them as from a local job; other nodes' lines tagged
`[node R]`), and reads the nodes' telemetry into the store. When the job ends it writes
`slurm_state.json` (what the supervisor maps onto the outcome, `states.slurm_outcome`) and exits
with the job's status. SIGTERM (a stop) is `scancel` and waiting until Slurm shows the job ended.

It is an entry point: it opens the store the run's launch spec names, like the supervisor.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from zerodeck.core.launch.slurm.client import SlurmClient, SlurmError
from zerodeck.core.launch.slurm.nodes import node_telemetry
from zerodeck.core.launch.slurm.queue import GONE_AFTER_S, MIN_AGE_S, POLL_S, SharedQueue
from zerodeck.core.launch.slurm.render import SBATCH_FILE, TELEMETRY_DIR
from zerodeck.core.launch.slurm.result import STATE_FILE
from zerodeck.core.launch.slurm.states import JobState
from zerodeck.store.api import Store

JOB_FILE = "slurm_job.json"
TELEMETRY_FLUSH_S = 5.0
STOP_VERIFY_S = 6.0  # inside the supervisor's grace before SIGKILL (GRACE_S = 8)
HEARTBEAT_S = 300.0  # a pending job says so in the log: waiting in the queue is not a stall
FINAL_TRIES = 6  # polls to wait for an ended job's exit code (sacct / scontrol) before recording without it
QUICK_S = 10.0  # after submitting, poll at MIN_AGE_S this long (a free cluster starts a job at once)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def parse_slurm_time(text: str | None) -> datetime | None:
    """Slurm prints local times without a zone ("2026-11-30T16:10:38")."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).astimezone(timezone.utc)
    except ValueError:
        return None


def _age_s(since: datetime) -> float:
    return (utcnow() - since).total_seconds()


def submitted_job(run_dir: Path) -> str | None:
    """The job id this run was submitted as, when it was (`slurm_job.json`)."""
    try:
        job_id = json.loads((run_dir / JOB_FILE).read_text()).get("job_id")
    except (OSError, ValueError, AttributeError):
        return None
    return str(job_id) if job_id else None


def follow_again(run_dir: Path) -> bool:
    """A Slurm run whose follower is gone but whose job may still be in Slurm: submitted, not ended."""
    return submitted_job(run_dir) is not None and not (run_dir / STATE_FILE).exists()


class LogStreamer:
    """Copies what each node's log gained since the last call into the run's log."""

    def __init__(self, run_dir: Path, out: IO[str]) -> None:
        self.run_dir = run_dir
        self.out = out
        self.offsets: dict[Path, int] = {}
        self.partial: dict[Path, str] = {}

    def pump(self, final: bool = False) -> None:
        logs = sorted(self.run_dir.glob("node-*.log"), key=_node_index)
        logs += sorted(self.run_dir.glob("slurm-*.out"))
        for path in logs:
            prefix = _prefix(path)
            try:
                with open(path, "rb") as f:
                    f.seek(self.offsets.get(path, 0))
                    data = f.read()
            except OSError:
                continue
            if not data:
                continue
            self.offsets[path] = self.offsets.get(path, 0) + len(data)
            text = self.partial.pop(path, "") + data.decode(errors="replace")
            lines = text.split("\n")
            if not final:
                self.partial[path] = lines.pop()
            for line in lines:
                if line or final is False:
                    self.out.write(f"{prefix}{line}\n")
        self.out.flush()


def _node_index(path: Path) -> int:
    try:
        return int(path.stem.split("-", 1)[1])
    except (IndexError, ValueError):
        return 1 << 30


def _prefix(path: Path) -> str:
    if path.name.startswith("slurm-"):
        return "[slurm] "
    index = _node_index(path)
    return "" if index == 0 else f"[node {index}] "


class Follower:
    def __init__(self, store: Store, run_id: int, run_dir: Path, queue: SharedQueue, *, nodes: int, cards: int,
                 device: str, out: IO[str] = sys.stdout, poll: float = POLL_S) -> None:
        self.store, self.run_id, self.run_dir, self.queue = store, run_id, run_dir, queue
        self.nodes, self.cards, self.device, self.out, self.poll = nodes, cards, device, out, poll
        self.client: SlurmClient = queue.client
        self.stop_wanted = False
        self.job_id: str | None = None
        self.last: JobState | None = None
        self.started: datetime | None = None
        self.submitted: datetime | None = None
        self.logs = LogStreamer(run_dir, out)
        self._flushed = 0.0
        self._said = 0.0

    def say(self, text: str) -> None:
        self.out.write(f"zerodeck: {text}\n")
        self.out.flush()

    def write_state(self, data: dict[str, Any]) -> None:
        (self.run_dir / STATE_FILE).write_text(json.dumps(data, indent=2) + "\n")

    # -- the life of the job ----------------------------------------------------------------------
    def run(self) -> int:
        known = submitted_job(self.run_dir)
        if known is not None:
            # The run's follower died with its supervisor and the reconciler started them again:
            # follow the job already submitted, never submit a second one.
            self.job_id = known
            row = self.store.slurm_job(self.run_id)
            self.submitted = row.submitted_at if row is not None else None
            self.started = row.started_at if row is not None else None
            self.say(f"following Slurm job {self.job_id} again")
        elif not self.submit():
            return 1
        job_id = self.job_id
        assert job_id is not None
        missing_since: float | None = None
        final_tries = 0
        started_polling = time.monotonic()
        while True:
            if self.stop_wanted:
                return self.cancel()
            try:
                state = self.queue.observe([job_id]).get(job_id)
            except SlurmError as exc:
                self.say(f"scheduler query failed: {exc}")
                state = None
            now = time.monotonic()
            if state is None:
                missing_since = missing_since or now
                if now - missing_since > GONE_AFTER_S:
                    return self.vanished()
            else:
                missing_since = None
                self.note(state)
                if state.terminal and (state.exit_code is not None or final_tries >= FINAL_TRIES):
                    return self.ended(state)
                if state.terminal:  # squeue said it ended; the exit code comes with the next final query
                    final_tries += 1
            self.logs.pump()
            self.flush_telemetry()
            # Quick polls until the job runs, so the start is recorded within a second of it.
            quick = (self.started is None and time.monotonic() - started_polling < QUICK_S) or final_tries > 0
            self._sleep(min(self.poll, MIN_AGE_S) if quick else self.poll)

    def submit(self) -> bool:
        try:
            self.job_id = self.client.submit(self.run_dir / SBATCH_FILE)
        except SlurmError as exc:
            self.say(f"submission failed: {exc}")
            self.write_state({"state": "NOT_SUBMITTED", "error": str(exc)})
            return False
        self.submitted = utcnow()
        (self.run_dir / JOB_FILE).write_text(json.dumps({"job_id": self.job_id}) + "\n")
        self.store.upsert_slurm_job(self.run_id, job_id=self.job_id, state="PENDING", nodes=self.nodes,
                                    cards_per_node=self.cards, submitted_at=self.submitted)
        self.say(f"submitted Slurm job {self.job_id} ({self.nodes} node(s) x {self.cards} card(s))")
        return True

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stop_wanted and time.monotonic() < deadline:
            time.sleep(min(0.1, seconds))

    def note(self, state: JobState) -> None:
        """Record a change of state or reason; the first RUNNING fixes the queue wait."""
        last = self.last
        self.last = state
        changed = last is None or (last.state, last.reason) != (state.state, state.reason)
        now = time.monotonic()
        if state.pending and not changed and now - self._said >= HEARTBEAT_S:
            self.say(f"Slurm job {self.job_id} still {state.state} ({state.reason or 'no reason given'})")
            self._said = now
        if not changed:
            return
        self._said = now
        fields: dict[str, Any] = {"state": state.state, "state_reason": state.reason,
                                  "partition": state.partition}
        if state.node_list:
            fields["node_list"] = self._expand(state.node_list)
        if (state.running or state.terminal) and self.started is None:
            self.started = parse_slurm_time(state.start_time) or utcnow()
            submitted = parse_slurm_time(state.submit_time) or self.submitted
            fields["started_at"] = self.started
            if submitted is not None:
                fields["submitted_at"] = submitted
                fields["queue_wait_s"] = round(max(0.0, (self.started - submitted).total_seconds()), 3)
        self.store.upsert_slurm_job(self.run_id, **fields)
        why = f" ({state.reason})" if state.reason and state.reason != "None" else ""
        where = f" on {fields.get('node_list')}" if state.running and fields.get("node_list") else ""
        self.say(f"Slurm job {self.job_id} {state.state}{why}{where}")

    def _expand(self, node_list: str) -> str:
        try:
            return ",".join(self.client.hostnames(node_list))
        except SlurmError:
            return node_list

    def ended(self, state: JobState) -> int:
        self.logs.pump(final=True)
        self.flush_telemetry(force=True)
        ended = parse_slurm_time(state.end_time) or utcnow()
        self.store.upsert_slurm_job(self.run_id, state=state.state, state_reason=state.reason,
                                    exit_code=state.exit_code, ended_at=ended)
        extra: dict[str, Any] = {"stopped": self.stop_wanted}
        if state.state == "NODE_FAIL":
            with contextlib.suppress(SlurmError):
                nodes = self._expand(state.node_list).split(",") if state.node_list else []
                extra["failed_node"] = ",".join(n for n in nodes if n in self.client.down_nodes()) or None
        self.write_state({**asdict(state), **extra})
        code = state.exit_code or "?"
        self.say(f"Slurm job {self.job_id} ended {state.state} (exit {code})")
        if state.state == "COMPLETED":
            return 0
        from zerodeck.core.launch.slurm.states import exit_status

        status = exit_status(state.exit_code)
        return status if status else 1

    def flush_telemetry(self, force: bool = False) -> None:
        now = time.monotonic()
        # Every 5 s while the run is young, then every 30 s: the files are re-read whole each time.
        every = TELEMETRY_FLUSH_S if self.started is None or _age_s(self.started) < 300 else 6 * TELEMETRY_FLUSH_S
        if not force and now - self._flushed < every:
            return
        self._flushed = now
        samples, peaks, _nodes = node_telemetry(self.run_dir / TELEMETRY_DIR, self.device)
        if samples or peaks:
            with contextlib.suppress(Exception):  # a busy store misses one flush, never the run
                self.store.replace_telemetry(self.run_id, samples, peaks)

    def vanished(self) -> int:
        self.logs.pump(final=True)
        self.flush_telemetry(force=True)
        self.say(f"Slurm job {self.job_id} is no longer known to Slurm")
        self.store.upsert_slurm_job(self.run_id, state="UNKNOWN", ended_at=utcnow())
        self.write_state({"job_id": self.job_id, "state": "UNKNOWN"})
        return 1

    def cancel(self) -> int:
        """scancel, then wait until Slurm shows the job ended (or forgets it)."""
        assert self.job_id is not None
        self.say(f"stopping: scancel {self.job_id}")
        self.client.cancel(self.job_id)
        deadline = time.monotonic() + STOP_VERIFY_S
        final = JobState(self.job_id, "CANCELLED")
        while time.monotonic() < deadline:
            try:
                listed = self.client.squeue()
            except SlurmError:
                break
            state = listed.get(self.job_id)
            if state is None or (state.terminal and state.state != "COMPLETING"):
                final = state or final
                break
            time.sleep(0.3)
        else:
            self.say(f"Slurm job {self.job_id} still listed after {STOP_VERIFY_S:.0f} s")
        self.stop_wanted = True
        self.ended(final)
        return 143


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="zerodeck-slurm-follow")
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--run-id", type=int, required=True)
    ap.add_argument("--cache", required=True)
    ap.add_argument("--nodes", type=int, default=1)
    ap.add_argument("--cards", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--poll", type=float, default=POLL_S)
    args = ap.parse_args(argv)
    from zerodeck.core.launch.spec import JobSpec, SpecError

    run_dir = Path(args.run_dir)
    try:
        spec = JobSpec.read(run_dir)
    except SpecError as exc:
        print(f"zerodeck: {exc}", flush=True)
        return 1
    store = Store.open(spec.store_url)
    follower = Follower(store, args.run_id, run_dir, SharedQueue(Path(args.cache), max_age=args.poll),
                        nodes=args.nodes, cards=args.cards, device=args.device, poll=args.poll)

    def _stop(*_: Any) -> None:
        follower.stop_wanted = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with contextlib.suppress(BrokenPipeError):
        return follower.run()
    return 1


if __name__ == "__main__":
    sys.exit(main())
