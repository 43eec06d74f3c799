"""The base of every zerodeck screen: the app typed as what it is, and the app's hooks with defaults.

`zapp` is `self.app` typed as `ZerodeckApp`, so screens reach the services and the shared state
through checked attributes. The app pushes telemetry, the active runs and the followed run's
progress to whichever screen is shown through the `show_*` hooks; a screen overrides those it draws.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual import events
from textual.screen import Screen
from zerodeck.tui.messages import LoadFailed
from zerodeck.tui.view import Frame, Progress

if TYPE_CHECKING:
    from zerodeck.store.records import RunRecord
    from zerodeck.tui.app import ZerodeckApp


class ZerodeckScreen(Screen[None]):
    _styled_theme: str | None = None  # the theme this screen's widgets were last styled for

    def _on_screen_resume(self, event: events.ScreenResume) -> None:
        # Runs before Textual's own handler (subclass first). Textual re-applies the whole stylesheet to
        # every widget of a screen it shows, and that empties each table's cache of rendered cells: with
        # the Runs table it was most of the 130-320 ms a number key took (issue 12). A new screen was
        # styled when its widgets were mounted, and a hidden one's styles cannot have changed unless
        # the theme did; a changed stylesheet is still re-applied by `switch_mode`'s own check of the
        # app's CSS generation.
        theme = self.app.theme
        if self._styled_theme in (None, theme):
            event.refresh_styles = False
        self._styled_theme = theme
        # A mode's screen made by `switch_mode` is styled by the current stylesheet, but Textual 8 records
        # that on the screen it leaves, so coming back to this one the first time re-parsed and
        # re-applied the whole stylesheet (100 ms). Record it here, as Textual does after a refresh.
        if self._css_update_count < 0:
            self._css_update_count = self.app._css_update_count

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
