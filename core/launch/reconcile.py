"""Runs whose supervisor vanished (machine rebooted, supervisor killed): re-adopt or mark lost.

Called on start-up of every command that reads runs. A run still `queued`/`starting`/`running`
whose supervisor is gone is re-adopted when processes tagged with its id still live (a new
supervisor watches them to the end), else recorded `lost` with what its log says.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from zerodeck.core.launch import procs
from zerodeck.core.launch.api import spawn_supervisor
from zerodeck.core.outcome.classify import diagnose
from zerodeck.store.api import Store

# A run created this recently may not have its supervisor yet; leave it alone.
SPAWN_GRACE = timedelta(seconds=20)


def reconcile(store: Store) -> list[tuple[int, str]]:
    """Returns (run id, 'adopted' | 'lost') for each run it touched."""
    touched: list[tuple[int, str]] = []
    now = datetime.now(timezone.utc)
    for run in store.active_runs():
        if procs.supervisor_alive(run.supervisor_pid, run.id, run.workdir):
            continue
        if run.supervisor_pid is None and run.created_at is not None and now - run.created_at < SPAWN_GRACE:
            continue
        if run.workdir and procs.tagged_pids(run.workdir):
            pid = spawn_supervisor(store, run.id, Path(run.workdir), adopt=True)
            store.update_run(run.id, supervisor_pid=pid)
            touched.append((run.id, "adopted"))
            continue
        text = ""
        if run.log_path and Path(run.log_path).is_file():
            text = Path(run.log_path).read_text(errors="replace")[-200_000:]
        excerpt = diagnose(text, exit_code=None).excerpt or None
        reason = "supervisor vanished and no process of the run remains"
        if excerpt:
            reason += f"; log: {excerpt.splitlines()[-1][:160]}"
        store.finish_run(run.id, "lost", reason, ended_at=now, outcome_excerpt=excerpt)
        touched.append((run.id, "lost"))
    return touched
