"""One batched scheduler query per poll for every followed Slurm job, shared between processes.

Each run's follower is its own process, yet clusters rate-limit per user (submitit #1759): the
followers share one answer through a file under `$ZERODECK_HOME/slurm/`. Whoever holds the lock
and finds the answer older than the poll interval asks Slurm once (`squeue` for every job of the
user, then one `sacct` or `scontrol show job` for the jobs that ended), writes it, and every other
follower reads it. With 50 followed jobs that is one `squeue` per poll, not fifty.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from zerodeck.core.launch.slurm.client import SlurmClient, SlurmError
from zerodeck.core.launch.slurm.states import TERMINAL_STATES, JobState

POLL_S = 2.0
# A job just submitted is not in the shared answer yet: its follower may ask again this soon.
MIN_AGE_S = 0.5
# A job squeue no longer lists and no final query knows after this long is gone (purged).
GONE_AFTER_S = 30.0


class SharedQueue:
    def __init__(self, cache: Path, client: SlurmClient | None = None, *, max_age: float = POLL_S,
                 clock: Callable[[], float] = time.time) -> None:
        self.cache = cache
        self.client = client or SlurmClient()
        self.max_age = max_age
        self.clock = clock

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.cache.parent.mkdir(parents=True, exist_ok=True)
        with open(self.cache.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.cache.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, data: dict[str, Any]) -> None:
        tmp = self.cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.cache)

    def observe(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        """The newest known state of each of `job_ids` (a job Slurm no longer knows is absent)."""
        with self._locked():
            data = self._read()
            if isinstance(data.get("sacct_works"), bool):  # learnt once for every follower
                self.client.sacct_works = data["sacct_works"]
            now = self.clock()
            jobs: dict[str, Any] = data.get("jobs", {})
            finals: dict[str, Any] = data.get("finals", {})
            age = now - float(data.get("at", 0.0))
            known = all(j in jobs or j in finals for j in job_ids)
            fresh = age < min(MIN_AGE_S, self.max_age) or (age < self.max_age and known)
            if not fresh:
                try:
                    listed = self.client.squeue()
                except SlurmError as exc:
                    data["error"] = str(exc)
                    self._write(data)
                    raise
                jobs = {k: dataclasses.asdict(v) for k, v in listed.items()}
                data.update(at=now, jobs=jobs, error=None)
            # Ended jobs need their exit code, which only sacct / scontrol give: ask once per job.
            need = [j for j in job_ids if j not in finals and (j not in jobs or jobs[j]["state"] in _TERMINAL)]
            if need and now - float(data.get("finals_at", 0.0)) >= self.max_age:
                try:
                    got = self.client.final_states(need)
                except SlurmError:
                    got = {}
                for job_id, state in got.items():
                    if state.terminal:
                        finals[job_id] = dataclasses.asdict(state)
                data.update(finals=_recent(finals, now), finals_at=now, sacct_works=self.client.sacct_works)
            counts = data.get("calls", {})
            for name, count in self.client.calls.items():
                counts[name] = counts.get(name, 0) + count
            self.client.calls.clear()
            data["calls"] = counts
            self._write(data)
        out: dict[str, JobState] = {}
        for job_id in job_ids:
            raw = finals.get(job_id) or jobs.get(job_id)
            if raw:
                out[job_id] = JobState(**{k: v for k, v in raw.items() if k in _FIELDS})
        return out

    def calls(self) -> dict[str, int]:
        """How many scheduler commands every follower sharing this cache has run (for the benchmark)."""
        return dict(self._read().get("calls", {}))


def _recent(finals: dict[str, Any], now: float) -> dict[str, Any]:
    # Keep finals a day: a follower that restarts still finds how its job ended.
    for raw in finals.values():
        raw.setdefault("_seen", now)
    return {k: v for k, v in finals.items() if now - float(v.get("_seen", now)) < 86400}


_FIELDS = {f.name for f in dataclasses.fields(JobState)}
_TERMINAL = TERMINAL_STATES
