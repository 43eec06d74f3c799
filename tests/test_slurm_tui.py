"""The TUI's Live view of a Slurm run: nodes x cards and the job's state, PENDING with its reason."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from textual.widgets import Static
from zerodeck.tui.screens.live import progress_text
from zerodeck.tui.view import ClusterView, Progress

from .tui_support import NOW, add_running, app, drive, store, text_of, until


def test_progress_shows_nodes_cards_and_the_pending_reason() -> None:
    add_running(Path("/nonexistent.log"), name="qwen72b-full")
    run = store().runs()[0]
    p = Progress(run=run, cluster=ClusterView(nodes=2, cards=8, state="PENDING", reason="Resources", job_id="41"))
    line = progress_text(p, NOW, 100).plain.splitlines()[0]
    assert "2x8 nodes·cards  Slurm PENDING (Resources)" in line
    running = Progress(run=run, cluster=ClusterView(nodes=2, cards=8, state="RUNNING", reason="None"))
    assert "Slurm RUNNING  step" in progress_text(running, NOW, 100).plain
    assert len(progress_text(p, NOW, 80).plain.splitlines()[0]) <= 79  # still one row at 80 columns


def test_live_follows_the_job_state_as_the_follower_records_it(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_text("zerodeck: submitted Slurm job 41\n", encoding="utf-8")
    run_id = add_running(log, name="qwen72b-full")
    s = store()
    s.upsert_slurm_job(run_id, job_id="41", state="PENDING", state_reason="Priority", nodes=2, cards_per_node=8,
                       submitted_at=datetime.now(timezone.utc))
    a = app(None, mode="live")

    async def body(pilot: Any) -> None:
        progress = pilot.app.screen.query_one("#progress", Static)
        await until(pilot, lambda: "Slurm PENDING (Priority)" in text_of(progress))
        assert "2x8 nodes·cards" in text_of(progress)
        await pilot.press("c")  # keys still answer while the job waits
        await pilot.pause(0.2)
        s.upsert_slurm_job(run_id, state="RUNNING", state_reason="None", node_list="npu-a01,npu-a02")
        await until(pilot, lambda: "Slurm RUNNING" in text_of(progress))
        assert "(None)" not in text_of(progress)

    drive(a, body, size=(120, 40))
