"""The supervisor's side of a Slurm run's end: `slurm_state.json` (written by the follower) turns
the diagnosis of the logs into the run's outcome (`states.slurm_outcome`)."""

from __future__ import annotations

import json
from pathlib import Path

from zerodeck.core.launch.slurm.states import JobState, slurm_outcome
from zerodeck.core.outcome.classify import Diagnosis

STATE_FILE = "slurm_state.json"


def adjust(run_dir: Path, d: Diagnosis) -> Diagnosis:
    """`d` as Slurm's end state says (unchanged for a local run, or a file that does not read)."""
    try:
        data = json.loads((run_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return d
    if not isinstance(data, dict) or not isinstance(data.get("state"), str):
        return d
    if data.get("error"):
        return Diagnosis("failed", d.device, d.code, d.rank, d.excerpt, str(data["error"]))
    if data["state"] == "UNKNOWN":  # vanished: the logs decide, as for a local run whose processes are gone
        if d.outcome == "succeeded":
            return d
        reason = "the Slurm job vanished from the queue" + (f": {d.reason}" if d.reason else "")
        return Diagnosis(d.outcome or "lost", d.device, d.code, d.rank, d.excerpt, reason)
    fields = {k: data.get(k) for k in ("job_id", "state", "reason", "node_list", "exit_code")}
    job = JobState(**{k: (str(v) if v is not None else None) for k, v in fields.items()})  # type: ignore[arg-type]
    stopped = bool(data.get("stopped")) or d.reason == "stopped on request"
    failed = data.get("failed_node")
    return slurm_outcome(job, d, stopped=stopped, failed_node=str(failed) if failed else None)
