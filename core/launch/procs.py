"""Finding and ending every process of a run, wherever its launcher put it.

torchrun starts each rank with `start_new_session=True`, and llamafactory-cli's torchrun does the
same, so killing the launcher's process group can leave ranks holding card memory (see the signal
matrix in the test fixtures). Every job process inherits `ZERODECK_RUN_TAG` (its run directory,
unique across stores, unlike run ids); the sweep reads /proc/<pid>/environ through psutil and
finds them all, in any session.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

import psutil
from zerodeck.core.launch.environment import RUN_TAG

SUPERVISOR_MODULE = "zerodeck.core.launch.supervisor"


def tagged_pids(tag: str | None) -> set[int]:
    """PIDs of live processes whose environment carries this run's tag (zombies excluded)."""
    if not tag:
        return set()
    want = str(tag)
    me = os.getpid()
    out: set[int] = set()
    for proc in psutil.process_iter(["pid", "status"]):
        pid = proc.info["pid"]
        if pid == me or proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            if proc.environ().get(RUN_TAG) == want:
                out.add(pid)
        except (psutil.Error, OSError):
            continue
    return out


def supervisor_alive(pid: int | None, run_id: int, workdir: str | None) -> bool:
    """True when `pid` is still this run's supervisor (not a recycled PID, not another store's).

    Cheap (a few /proc reads): every watcher asks it on each poll."""
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        cmd = proc.cmdline()
    except (psutil.Error, OSError):
        return False
    if SUPERVISOR_MODULE not in cmd or str(run_id) not in cmd:
        return False
    try:
        cwd = proc.cwd()
    except psutil.AccessDenied:
        return True  # another user's supervisor of this run: it cannot be told apart, so never judged dead
    except (psutil.Error, OSError):
        return False
    # The supervisor runs in its run directory, which tells stores (and so equal run ids) apart.
    return workdir is None or cwd == workdir or cwd == os.path.realpath(workdir)


def signal_group(pgid: int | None, sig: int) -> None:
    if not pgid:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def kill_pids(pids: set[int], sig: int = signal.SIGKILL) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def wait_gone(tag: str | None, timeout: float, poll: float = 0.2) -> set[int]:
    """Wait until no tagged process remains; return the ones still there after `timeout`."""
    deadline = time.monotonic() + timeout
    left = tagged_pids(tag)
    while left and time.monotonic() < deadline:
        time.sleep(poll)
        left = tagged_pids(tag)
    return left


def terminate_run(tag: str | None, pgid: int | None, grace: float) -> set[int]:
    """SIGTERM the launcher's group and every tagged process, wait `grace`, then SIGKILL the rest.

    Returns what still lives afterwards (empty on success).
    """
    signal_group(pgid, signal.SIGTERM)
    kill_pids(tagged_pids(tag), signal.SIGTERM)
    left = wait_gone(tag, grace)
    if left or pgid:
        signal_group(pgid, signal.SIGKILL)
        kill_pids(left | tagged_pids(tag), signal.SIGKILL)
    return wait_gone(tag, 5.0)


class Sweep:
    """The run-wide process operations the supervisor needs, as one object it is handed: the
    scripted supervisor tests give it a fake that ends their fake processes instead of real ones."""

    def tagged_pids(self, tag: str | None) -> set[int]:
        return tagged_pids(tag)

    def wait_gone(self, tag: str | None, timeout: float) -> set[int]:
        return wait_gone(tag, timeout)

    def terminate_run(self, tag: str | None, pgid: int | None, grace: float) -> set[int]:
        return terminate_run(tag, pgid, grace)
