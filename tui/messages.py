"""Messages the workers post to the app; they carry plain objects only."""

from __future__ import annotations

from textual.message import Message
from zerodeck.tui.view import Progress, RunRow


class FrameReady(Message):
    """A new telemetry frame is waiting in `app.latest_frame` (the message itself carries none, so a
    backlog of these collapses to the newest frame)."""


class RunsChanged(Message):
    def __init__(self, active: list[RunRow]) -> None:
        super().__init__()
        self.active = active


class ProgressReady(Message):
    def __init__(self, progress: Progress | None, log_lines: list[str], reset_log: bool) -> None:
        super().__init__()
        self.progress = progress
        self.log_lines = log_lines
        self.reset_log = reset_log


class Loaded(Message):
    """A one-off worker's result for the screen that started it (`what` says which request)."""

    def __init__(self, what: str, data: object = None, error: str | None = None) -> None:
        super().__init__()
        self.what = what
        self.data = data
        self.error = error


class Notice(Message):
    """One line for the user from a worker (e.g. a run re-adopted at start-up)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
