"""Runs whose supervisor vanished (machine rebooted, supervisor killed): re-adopt or mark lost.

Called on start-up of every command that reads runs. A run still `queued`/`starting`/`running`
whose supervisor is gone is re-adopted when processes tagged with its id still live (a new
supervisor watches them to the end), else recorded `lost` with what its log says.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

# A run created this recently may not have its supervisor yet; leave it alone.
SPAWN_GRACE = timedelta(seconds=20)


def reconcile(session: Any) -> list[tuple[int, str]]:
    """Returns (run id, 'adopted' | 'lost') for each run it touched."""
    from sqlmodel import col, select
    from zerodeck.core.launch import procs
    from zerodeck.core.launch.api import ACTIVE, spawn_supervisor
    from zerodeck.core.launch.outcome_bridge import diagnose_text
    from zerodeck.store.models import Run, utcnow
    from zerodeck.store.queries import update_run

    touched: list[tuple[int, str]] = []
    now = utcnow()
    for run in list(session.exec(select(Run).where(col(Run.status).in_(ACTIVE)))):
        assert run.id is not None
        if procs.supervisor_alive(run.supervisor_pid, run.id, run.workdir):
            continue
        created = run.created_at if run.created_at.tzinfo else run.created_at.replace(tzinfo=now.tzinfo)
        if run.supervisor_pid is None and now - created < SPAWN_GRACE:
            continue
        if run.workdir and procs.tagged_pids(run.workdir):
            pid = spawn_supervisor(run.id, Path(run.workdir), adopt=True)
            update_run(session, run.id, supervisor_pid=pid)
            touched.append((run.id, "adopted"))
            continue
        text = ""
        if run.log_path and Path(run.log_path).is_file():
            text = Path(run.log_path).read_text(errors="replace")[-200_000:]
        verdict = diagnose_text(text, None)
        reason = "supervisor vanished and no process of the run remains"
        if verdict.excerpt:
            reason += f"; log: {verdict.excerpt.splitlines()[-1][:160]}"
        update_run(session, run.id, status="finished", outcome="lost", reason=reason, ended_at=now,
                   outcome_excerpt=verdict.excerpt)
        touched.append((run.id, "lost"))
    return touched
