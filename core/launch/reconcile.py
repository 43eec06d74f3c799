"""Runs whose supervisor vanished (machine rebooted, supervisor killed): re-adopt or conclude.

Called on start-up of every command that reads runs, and on every poll of whoever waits on a run
(`api.wait_run`, `logs -f`, the queue runner), so a dead supervisor is noticed within seconds. A run
still `queued`/`starting`/`running` whose supervisor is gone is re-adopted when processes tagged
with its run directory still live (a new supervisor watches them to the end); otherwise its log is
read as re-adoption would read it (`Supervisor.conclude`): metric points, summary and card peaks are
stored, and the run is recorded as its log proves (succeeded, or the diagnosed failure), `lost` only
when the log tells nothing. On a read-only store nothing is written and nothing fails.
"""

from __future__ import annotations

import contextlib
import fcntl
import socket
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

from zerodeck.core.launch import procs
from zerodeck.core.launch.api import spawn_supervisor
from zerodeck.core.launch.ledger import release_stale
from zerodeck.core.launch.spec import JobSpec, SpecError
from zerodeck.core.launch.supervisor import Supervisor
from zerodeck.store.api import Store
from zerodeck.store.errors import StoreReadOnly
from zerodeck.store.records import RunRecord

# A run created this recently may not have its supervisor yet; leave it alone.
SPAWN_GRACE = timedelta(seconds=20)
LOCK_FILE = ".reconcile.lock"


def supervisor_gone(run: RunRecord, now: datetime | None = None) -> bool:
    """True when nothing supervises this unfinished run (cheap: a few /proc reads)."""
    if procs.supervisor_alive(run.supervisor_pid, run.id, run.workdir):
        return False
    now = now or datetime.now(timezone.utc)
    return not (run.supervisor_pid is None and run.created_at is not None and now - run.created_at < SPAWN_GRACE)


def reconcile(store: Store, run_ids: set[int] | None = None) -> list[tuple[int, str]]:
    """Returns (run id, 'adopted' | the outcome recorded) for each run it touched.

    A read-only store stops it quietly: read commands must keep working there."""
    touched: list[tuple[int, str]] = []
    now = datetime.now(timezone.utc)
    for run in store.active_runs():
        if run_ids is not None and run.id not in run_ids:
            continue
        try:
            what = reconcile_run(store, run, now)
        except StoreReadOnly:
            break
        if what:
            touched.append((run.id, what))
    with contextlib.suppress(StoreReadOnly):
        # Cards whose run is gone or finished are given back (finish_run gives them back itself;
        # this frees what a dead runner took before it made the run).
        release_stale(store, socket.gethostname())
    return touched


def reconcile_run(store: Store, run: RunRecord, now: datetime | None = None) -> str | None:
    """Re-adopt or conclude one unfinished run whose supervisor is gone; None when it needs nothing."""
    if not supervisor_gone(run, now):
        return None
    with _run_lock(run.workdir):
        # Under the lock, look again: another watcher may have adopted or concluded it meanwhile, or
        # the supervisor recorded the end just before it exited.
        fresh = store.run(run.id)
        if fresh is None or fresh.finished or not supervisor_gone(fresh, now):
            return None
        # A supervisor records the end before it exits, so read once more now that it is seen gone:
        # one that finished and exited between the read above and that look (an adopter another
        # watcher just started, or the first supervisor) must not be concluded or adopted again.
        after = store.run(run.id)
        if after is None or after.finished or after.supervisor_pid != fresh.supervisor_pid:
            return None
        return _reconcile_locked(store, after)


@contextlib.contextmanager
def _run_lock(workdir: str | None) -> Iterator[None]:
    """One reconciler per run at a time (a foreground `run`, `logs -f` and the TUI may all notice the
    same death in the same second): exactly one adopter is started."""
    fh = None
    if workdir:
        with contextlib.suppress(OSError):
            fh = open(Path(workdir) / LOCK_FILE, "a")  # noqa: SIM115  (closed below)
            fcntl.flock(fh, fcntl.LOCK_EX)
    try:
        yield
    finally:
        if fh is not None:
            fh.close()


def _reconcile_locked(store: Store, fresh: RunRecord) -> str | None:
    if fresh.workdir and procs.tagged_pids(fresh.workdir):
        # Writing first (the same value) finds a read-only store before an adopter is started for nothing.
        store.update_run(fresh.id, supervisor_pid=fresh.supervisor_pid)
        pid = spawn_supervisor(store, fresh.id, Path(fresh.workdir), adopt=True)
        store.update_run(fresh.id, supervisor_pid=pid)
        return "adopted"
    if fresh.workdir and _slurm_job_unfollowed(Path(fresh.workdir)):
        # Its Slurm job lives on without anyone here: a new supervisor follows it again (issue 15).
        store.update_run(fresh.id, supervisor_pid=fresh.supervisor_pid)
        store.update_run(fresh.id, supervisor_pid=spawn_supervisor(store, fresh.id, Path(fresh.workdir)))
        return "adopted"
    return conclude(store, fresh)


def _slurm_job_unfollowed(run_dir: Path) -> bool:
    from zerodeck.core.launch.slurm.follow import follow_again

    return follow_again(run_dir)


def conclude(store: Store, run: RunRecord) -> str:
    """Record a run with no process left from what its log proves; returns the outcome recorded."""

    if not run.workdir:
        # Never launched (its launcher died between recording and starting it): there is no log.
        store.finish_run(run.id, "lost", "its launcher stopped before the run started; nothing ran")
        return "lost"
    run_dir = Path(run.workdir)
    try:
        spec: JobSpec | None = JobSpec.read(run_dir)
    except SpecError:
        spec = None
    sup = Supervisor(store, run.id, spec, make_recorder=None)
    return sup.conclude(f"supervisor vanished{_supervisor_said(run_dir)}")


def _supervisor_said(run_dir: Path) -> str:
    """The last line the dead supervisor wrote on stderr, if any: often why it died."""
    try:
        lines = (run_dir / "supervisor.log").read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return f" ({lines[-1][:160]})" if lines else ""
