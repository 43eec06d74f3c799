"""Stopping a run from any screen that shows one (Live, Runs, a run's record), in one place.

The stop waits for the last process of the run to go (seconds), so it runs in a worker thread and
reports back with a `Loaded("stop", ...)` message that the screen handles like any other load.
"""

from __future__ import annotations

from textual import work
from textual.screen import Screen
from zerodeck.tui.messages import Loaded


class StopsRuns(Screen[None]):
    @work(thread=True, group="stop")
    def _stop(self, run_id: int) -> None:
        try:
            self.app.services.stop(run_id)  # type: ignore[attr-defined]
            self.post_message(Loaded("stop", run_id))
        except Exception as exc:
            self.post_message(Loaded("stop", error=f"stop {run_id}: {exc}"))
