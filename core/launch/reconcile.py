"""Runs whose supervisor vanished (machine rebooted, supervisor killed): re-adopt or conclude.

Called on start-up of every command that reads runs, and on every poll of whoever waits on a run
(`api.wait_run`, `logs -f`, the queue runner), so a dead supervisor is noticed within seconds. A run
still `queued`/`starting`/`running` whose supervisor is gone is re-adopted when processes tagged
with its run directory still live (a new supervisor watches them to the end); otherwise its log is
read as re-adoption would read it (`Supervisor.conclude`): metric points, summary and card peaks are
stored, and the run is recorded as its log proves (succeeded, or the diagnosed failure), `lost` only
when the log tells nothing. On a read-only store nothing is written and nothing fails.

Several servers may share the store (issue 14): processes can be judged only on their own host, so
a run placed on another host is never judged here by its pids. A run made by a queue claim on
another host is judged by that host's heartbeat instead (`judge_hosts`): silent past the grace, the
run is recorded `lost` naming the host and since when, and its claim is taken (fencing its
supervisor, should the host come back). Nothing is retried behind the user's back. Queue items whose
runner stopped renewing their lease before it made their run go back to the queue (`expire_claims`).
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

from zerodeck.core.launch import procs
from zerodeck.core.launch.api import spawn_supervisor
from zerodeck.core.launch.hostname import host_grace, this_host
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
    me = this_host()
    for run in store.active_runs():
        if run_ids is not None and run.id not in run_ids:
            continue
        if not on_this_host(run, me):
            continue  # its own host judges its processes; here only its heartbeat can (judge_hosts)
        try:
            what = reconcile_run(store, run, now)
        except StoreReadOnly:
            break
        if what:
            touched.append((run.id, what))
    with contextlib.suppress(StoreReadOnly):
        # Cards whose run is gone or finished are given back (finish_run gives them back itself;
        # this frees what a dead runner took before it made the run).
        release_stale(store, me)
        touched += judge_hosts(store, me, host_grace(), run_ids)
    return touched


def on_this_host(run: RunRecord, me: str) -> bool:
    """A run with no host recorded is from a single-host store (or not placed yet): it is ours."""
    return run.host is None or run.host == me


def judge_hosts(store: Store, me: str, grace_s: float, run_ids: set[int] | None = None,
                now: datetime | None = None) -> list[tuple[int, str]]:
    """Claimed runs of other hosts silent for more than `grace_s` are recorded `lost` ("host gpu-02
    silent since ..."), and expired claims settled (`Store.expire_claims`). Returns (run id, 'lost')."""
    now = now or datetime.now(timezone.utc)
    cutoff = now - timedelta(seconds=grace_s)
    beats = {h.name: h.last_heartbeat for h in store.hosts()}
    lost: list[tuple[int, str]] = []
    for run_id, host, token, created in store.leased_runs():
        if host is None or host == me or (run_ids is not None and run_id not in run_ids):
            continue
        last = beats.get(host)
        if last is not None and last > cutoff:
            continue
        if last is None and created is not None and created > cutoff:
            continue  # never beat yet, and made within the grace
        since = last.strftime("%Y-%m-%d %H:%M:%S UTC") if last else "it was claimed"
        reason = f"host {host} silent since {since} (no heartbeat for over {grace_s:g} s); not retried"
        if store.lose_run(run_id, token, host, cutoff, reason):
            lost.append((run_id, "lost"))
    store.expire_claims()
    return lost


def reconcile_run(store: Store, run: RunRecord, now: datetime | None = None) -> str | None:
    """Re-adopt or conclude one unfinished run whose supervisor is gone; None when it needs nothing.
    A run on another host is judged by that host's heartbeat, never by this host's processes."""
    me = this_host()
    if not on_this_host(run, me):
        found = judge_hosts(store, me, host_grace(), {run.id})
        return found[0][1] if found else None
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
