"""Slurm's commands, run as argv lists with a time-out, and their output parsed.

One `SlurmClient` per process; tests and the benchmark count its calls (`calls`). Slurm finds its
controller through `SLURM_CONF` or its default, exactly as the user's own `sbatch` would: zerodeck
passes nothing of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from zerodeck.core.launch.slurm.states import JobState, none_if_empty, normalise

TIMEOUT_S = 20.0
SQUEUE_FORMAT = "%i|%T|%r|%N|%V|%S|%P"

# (argv, timeout) -> (returncode, stdout, stderr)
Runner = Callable[[Sequence[str], float], tuple[int, str, str]]


class SlurmError(RuntimeError):
    """A Slurm command that failed; the message is one line naming the command."""


def run_command(argv: Sequence[str], timeout: float) -> tuple[int, str, str]:
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, check=False)
    except FileNotFoundError:
        raise SlurmError(f"{argv[0]}: not found on PATH (is the Slurm client installed?)") from None
    except subprocess.TimeoutExpired:
        raise SlurmError(f"{argv[0]}: no answer in {timeout:.0f} s") from None
    return proc.returncode, proc.stdout, proc.stderr


class SlurmClient:
    def __init__(self, runner: Runner = run_command) -> None:
        self.runner = runner
        self.calls: Counter[str] = Counter()
        self.sacct_works: bool | None = None

    def _run(self, argv: list[str], *, check: bool = True) -> str:
        self.calls[argv[0]] += 1
        rc, out, err = self.runner(argv, TIMEOUT_S)
        if check and rc != 0:
            line = (err.strip() or out.strip() or f"exit status {rc}").splitlines()[-1]
            raise SlurmError(f"{argv[0]}: {line}")
        return out

    def submit(self, script: Path) -> str:
        """`sbatch --parsable SCRIPT` → the job id ("123", also when it prints "123;cluster")."""
        out = self._run(["sbatch", "--parsable", str(script)]).strip()
        job_id = out.splitlines()[-1].split(";")[0] if out else ""
        if not job_id.isdigit():
            raise SlurmError(f"sbatch: no job id in its answer {out!r}")
        return job_id

    def cancel(self, job_id: str) -> None:
        self._run(["scancel", job_id], check=False)

    def squeue(self) -> dict[str, JobState]:
        """One call for every job of this user, in every state Slurm still lists."""
        out = self._run(["squeue", "--noheader", "--states=all", f"--user={os.getuid()}",
                         f"--format={SQUEUE_FORMAT}"])
        return parse_squeue(out)

    def final_states(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        """Ended jobs with their exit codes: one `sacct` for all of them when accounting works,
        else one `scontrol show job` (every job the controller still holds)."""
        if not job_ids:
            return {}
        if self.sacct_works is not False:
            self.calls["sacct"] += 1
            rc, out, err = self.runner(["sacct", "--noheader", "--parsable2", "--allocations",
                                        f"--jobs={','.join(job_ids)}",
                                        "--format=JobID,State,ExitCode,NodeList,Submit,Start,End,Partition,Reason"],
                                       TIMEOUT_S)
            self.sacct_works = rc == 0 and "not running" not in err.lower() and "disabled" not in err.lower()
            if self.sacct_works:
                found = parse_sacct(out)
                if found:
                    return found
        rc, out, _err = self.runner(["scontrol", "--oneliner", "show", "job"], TIMEOUT_S)
        self.calls["scontrol"] += 1
        return parse_scontrol(out) if rc == 0 else {}

    def down_nodes(self) -> set[str]:
        """Nodes Slurm holds down, drained or failed (which node a NODE_FAIL job lost)."""
        out = self._run(["sinfo", "--noheader", "--Node", "--states=down,drain,fail,no_respond",
                         "--format=%N"], check=False)
        return set(out.split())

    def hostnames(self, node_list: str) -> list[str]:
        return self._run(["scontrol", "show", "hostnames", node_list]).split()


def parse_squeue(text: str) -> dict[str, JobState]:
    jobs: dict[str, JobState] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 7 or not parts[0]:
            continue
        job_id, state, reason, nodes, submit, start, partition = parts[:7]
        jobs[job_id] = JobState(job_id, normalise(state), none_if_empty(reason), none_if_empty(nodes),
                                submit_time=none_if_empty(submit), start_time=none_if_empty(start),
                                partition=none_if_empty(partition))
    return jobs


def parse_sacct(text: str) -> dict[str, JobState]:
    jobs: dict[str, JobState] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 9 or not parts[0] or "." in parts[0]:
            continue
        job_id, state, exit_code, nodes, submit, start, end, partition, reason = parts[:9]
        jobs[job_id] = JobState(job_id, normalise(state), none_if_empty(reason), none_if_empty(nodes),
                                none_if_empty(exit_code), none_if_empty(submit), none_if_empty(start),
                                none_if_empty(end), none_if_empty(partition))
    return jobs


def parse_scontrol(text: str) -> dict[str, JobState]:
    """`scontrol --oneliner show job`: one job per line of `Key=Value` words."""
    jobs: dict[str, JobState] = {}
    for line in text.splitlines():
        fields: dict[str, str] = {}
        for word in line.split():
            key, eq, value = word.partition("=")
            if eq and key not in fields:
                fields[key] = value
        job_id = fields.get("JobId")
        if not job_id:
            continue
        jobs[job_id] = JobState(job_id, normalise(fields.get("JobState", "")), none_if_empty(fields.get("Reason")),
                                none_if_empty(fields.get("NodeList")), none_if_empty(fields.get("ExitCode")),
                                none_if_empty(fields.get("SubmitTime")), none_if_empty(fields.get("StartTime")),
                                none_if_empty(fields.get("EndTime")), none_if_empty(fields.get("Partition")))
    return jobs


def client_found() -> str | None:
    """Where `sbatch` is, or None (costs a PATH walk, no Slurm call)."""
    return shutil.which("sbatch")
