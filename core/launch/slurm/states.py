"""Slurm's job states, and how each one ends a zerodeck run.

Pure functions over text, so the mapping is tested without a cluster. Slurm's states carry
outcomes a tracker must not flatten (TIMEOUT is not a crash, NODE_FAIL is not the job's fault):
the mapping keeps the Slurm state in the reason, and the state itself goes to the `slurm_job` row.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from zerodeck.core.outcome.classify import Diagnosis

# Slurm prints some states with a suffix ("CANCELLED by 0") or a "+" (CANCELLED+ in sacct).
PENDING_STATES = frozenset({"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD",
                            "SUSPENDED", "STOPPED"})
RUNNING_STATES = frozenset({"RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT", "RESIZING"})
TERMINAL_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "PREEMPTED", "NODE_FAIL",
                             "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "SPECIAL_EXIT", "REVOKED"})


@dataclass(frozen=True)
class JobState:
    """What one scheduler query says of one job."""

    job_id: str
    state: str  # normalised: "CANCELLED", never "CANCELLED by 0"
    reason: str | None = None  # squeue's %r / scontrol's Reason=: why it waits or why it ended
    node_list: str | None = None
    exit_code: str | None = None  # "code:signal" of the batch script, when known
    submit_time: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    partition: str | None = None

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def running(self) -> bool:
        return self.state in RUNNING_STATES

    @property
    def pending(self) -> bool:
        return self.state in PENDING_STATES


def normalise(state: str) -> str:
    return state.strip().split()[0].rstrip("+").upper() if state.strip() else "UNKNOWN"


def none_if_empty(value: str | None) -> str | None:
    value = (value or "").strip()
    return None if value in ("", "None", "(null)", "N/A", "Unknown", "n/a") else value


def exit_status(exit_code: str | None) -> int | None:
    """The batch script's exit status from Slurm's "code:signal" (a signal counts as 128 + it)."""
    if not exit_code or ":" not in exit_code:
        return None
    code, _, sig = exit_code.partition(":")
    try:
        c, s = int(code), int(sig)
    except ValueError:
        return None
    return 128 + s if s else c


def slurm_outcome(job: JobState, diagnosed: Diagnosis, *, stopped: bool = False,
                  failed_node: str | None = None) -> Diagnosis:
    """The run's outcome once its Slurm job ended in `job.state`; `diagnosed` is what the logs say.

    TIMEOUT → killed "time limit", PREEMPTED → killed, NODE_FAIL → lost naming the node,
    OUT_OF_MEMORY → oom on the host (the job's cgroup, not a card), CANCELLED → killed (stopped on
    request, or cancelled outside zerodeck), FAILED → what the logs diagnose, COMPLETED → the logs'
    verdict (a job that exits 0 without finishing its steps is still judged by its log)."""
    state = job.state
    tag = f"Slurm {state}" + (f", exit {job.exit_code}" if job.exit_code and job.exit_code != "0:0" else "")

    def with_(outcome: str, reason: str, device: str | None = None) -> Diagnosis:
        return dataclasses.replace(diagnosed, outcome=outcome, reason=f"{reason} ({tag})",
                                   device=device if device is not None else diagnosed.device)

    if state == "TIMEOUT":
        return with_("killed", "time limit")
    if state == "PREEMPTED":
        return with_("killed", "preempted")
    if state == "NODE_FAIL":
        if failed_node:
            return with_("lost", f"node {failed_node} failed")
        return with_("lost", f"a node of {job.node_list} failed" if job.node_list else "a node failed")
    if state == "OUT_OF_MEMORY":
        return with_("oom", "out of host memory", device="host")
    if state == "CANCELLED":
        return with_("killed", "stopped on request" if stopped else "cancelled outside zerodeck")
    if state in ("BOOT_FAIL", "DEADLINE", "REVOKED"):
        return with_("failed", state.lower().replace("_", " "))
    if state == "COMPLETED":
        if diagnosed.outcome is None:
            return with_("succeeded", "completed")
        return dataclasses.replace(diagnosed, reason=diagnosed.reason or "") if diagnosed.outcome == "succeeded" \
            else with_(diagnosed.outcome, diagnosed.reason or diagnosed.outcome)
    # FAILED (and anything else): the logs say why, as for a local run.
    outcome = diagnosed.outcome if diagnosed.outcome not in (None, "succeeded") else "failed"
    return with_(outcome, diagnosed.reason or diagnosed.excerpt or "the job failed")
