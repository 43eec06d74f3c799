"""Stopping a run from any screen that shows one (Live, Runs, a run's record), in one place.

The stop waits for the last process of the run to go (seconds), so it runs in a worker thread and
reports back with `RunStopped` (or `LoadFailed`), which each screen handles its own way.
"""

from __future__ import annotations

from textual import work
from zerodeck.tui.messages import LoadFailed, RunStopped
from zerodeck.tui.screens.base import ZerodeckScreen


class StopsRuns(ZerodeckScreen):
    @work(thread=True, group="stop")
    def _stop(self, run_id: int) -> None:
        try:
            self.zapp.services.stop(run_id)
            self.post_message(RunStopped(run_id))
        except Exception as exc:
            self.post_message(LoadFailed(f"stop {run_id}: {exc}"))

    def on_run_stopped(self, msg: RunStopped) -> None:
        self.notify(f"asked run {msg.run_id} to stop")
