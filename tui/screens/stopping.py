"""Stopping a run from any screen that shows one (Live, Runs, a run's record), in one place.

Stopping kills a job that may have run for days, so it always asks first: "stop run 12
qwen2.5-32b-lora-z3 (running 2 d 03 h)?", Enter or `y` to stop, Esc or `n` to keep it. The stop
waits for the last process of the run to go (seconds), so it runs in a worker thread and reports
back with `RunStopped` (or `LoadFailed`), which each screen handles its own way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import work
from zerodeck.core.i18n import _
from zerodeck.tui.messages import LoadFailed, RunStopped
from zerodeck.tui.screens.base import ZerodeckScreen
from zerodeck.tui.screens.confirm import ConfirmScreen, stop_question

if TYPE_CHECKING:
    from zerodeck.store.records import RunRecord


class StopsRuns(ZerodeckScreen):
    def ask_stop(self, run: RunRecord) -> None:
        """Ask, with the run's name and age, then stop it on Enter / y."""
        question, details = stop_question(run, self.zapp.clock())

        def answered(yes: bool | None) -> None:
            if yes:
                self.notify(_("stopping run {run_id} …").format(run_id=run.id), timeout=3)
                self._stop_now(run.id)

        self.app.push_screen(ConfirmScreen(question, details, verb=_("stop")), answered)

    def _stop(self, run_id: int) -> None:
        """Stop by id (asks first): the record is the app's copy of the active run."""
        run = next((r for r in self.zapp.active_runs if r.id == run_id), None)
        if run is None:
            self.notify(_("run {run_id} is not running").format(run_id=run_id), severity="warning")
            return
        self.ask_stop(run)

    @work(thread=True, group="stop")
    def _stop_now(self, run_id: int) -> None:
        try:
            self.zapp.services.stop(run_id)
            self.post_message(RunStopped(run_id))
        except Exception as exc:
            self.post_message(LoadFailed(_("stop {run_id}: {error}").format(run_id=run_id, error=exc)))

    def on_run_stopped(self, msg: RunStopped) -> None:
        self.notify(_("run {run_id} stopped").format(run_id=msg.run_id))
