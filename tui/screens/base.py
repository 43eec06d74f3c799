"""The base of every zerodeck screen: the app typed as what it is, and the app's hooks with defaults.

`zapp` is `self.app` typed as `ZerodeckApp`, so screens reach the services and the shared state
through checked attributes. The app pushes telemetry, the active runs and the followed run's
progress to whichever screen is shown through the `show_*` hooks; a screen overrides those it draws.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.screen import Screen
from zerodeck.tui.messages import LoadFailed
from zerodeck.tui.view import Frame, Progress

if TYPE_CHECKING:
    from zerodeck.store.records import RunRecord
    from zerodeck.tui.app import ZerodeckApp


class ZerodeckScreen(Screen[None]):
    @property
    def zapp(self) -> ZerodeckApp:
        return cast("ZerodeckApp", self.app)

    def show_frame(self, frame: Frame) -> None:
        """A new telemetry frame arrived."""

    def show_active(self, active: list[RunRecord]) -> None:
        """The set of running runs changed."""

    def show_progress(self, progress: Progress | None, lines: list[str], reset: bool) -> None:
        """The followed run moved, or its log grew (`reset`: a different run or log)."""

    def on_load_failed(self, msg: LoadFailed) -> None:
        self.notify(msg.error, severity="error", timeout=8)
