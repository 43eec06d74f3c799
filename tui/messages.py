"""The messages of the TUI, one class per thing that happened; they carry plain objects only.

Workers never touch widgets: they post one of these. The app's long-lived threads post to the app
(`TelemetrySnapshot`, `RunsChanged`, `ProgressReady`, `Notice`); a screen's one-off worker posts its
result to that screen, and those results do not bubble, so a screen and the app never both handle
one. Screens ask the app for what is not theirs (`LaunchRequested`) instead of calling each other.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.message import Message
from zerodeck.tui.view import BadFile, CatalogRow, Frame, Progress, RunDetail

if TYPE_CHECKING:
    from zerodeck.store.records import RunRecord  # dataclass creation: ~20 ms of start-up

# -- from the app's long-lived threads ---------------------------------------------------------


class TelemetrySnapshot(Message):
    """The newest telemetry frame. A newer one replaces any still queued (the memray pattern): a slow
    terminal never works through a backlog of stale snapshots."""

    def __init__(self, frame: Frame) -> None:
        super().__init__()
        self.frame = frame

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, TelemetrySnapshot)


class WarmedUp(Message):
    """The modules of the screens opened later are imported (in a worker): their styles can be read."""


class RunsChanged(Message):
    def __init__(self, active: list[RunRecord]) -> None:
        super().__init__()
        self.active = active


class ProgressReady(Message):
    def __init__(self, progress: Progress | None, log_lines: list[str], reset_log: bool) -> None:
        super().__init__()
        self.progress = progress
        self.log_lines = log_lines
        self.reset_log = reset_log


class Notice(Message):
    """One line for the user from a worker (e.g. a run re-adopted at start-up)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


# -- requests from a screen to the app ----------------------------------------------------------


class LaunchRequested(Message):
    """Launch this catalog recipe (from the catalog or a plan): the app owns launching and following."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


class RunLaunched(Message, bubble=False):
    def __init__(self, run_id: int, name: str) -> None:
        super().__init__()
        self.run_id = run_id
        self.name = name


# -- one-off workers' results, to the screen (or app) that started them --------------------------


class LoadFailed(Message, bubble=False):
    """A request failed; `error` is the one line the user is shown."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class CatalogLoaded(Message, bubble=False):
    """The catalog, without the planner's columns (`planned` False) or with them."""

    def __init__(self, rows: list[CatalogRow], bad: list[BadFile], planned: bool, error: str | None = None) -> None:
        super().__init__()
        self.rows = rows
        self.bad = bad
        self.planned = planned
        self.error = error


class RunQueued(Message, bubble=False):
    def __init__(self, name: str, item_id: int) -> None:
        super().__init__()
        self.name = name
        self.item_id = item_id


class PlanBuilt(Message, bubble=False):
    """A recipe's plan and its data advice (`zerodeck data inspect` as a dict), or why there is none."""

    def __init__(self, plan: Any = None, advice: dict[str, Any] | None = None, error: str | None = None) -> None:
        super().__init__()
        self.plan = plan
        self.advice = advice
        self.error = error


class RunsLoaded(Message, bubble=False):
    """The newest runs, how many the store holds, and the stamp they were read under (`None`: the stamp
    was unchanged, nothing was read again)."""

    def __init__(self, runs: list[RunRecord] | None, total: int, stamp: tuple[Any, ...]) -> None:
        super().__init__()
        self.runs = runs
        self.total = total
        self.stamp = stamp


class RunDetailLoaded(Message, bubble=False):
    def __init__(self, detail: RunDetail) -> None:
        super().__init__()
        self.detail = detail


class RunStopped(Message, bubble=False):
    def __init__(self, run_id: int) -> None:
        super().__init__()
        self.run_id = run_id


class CompareLoaded(Message, bubble=False):
    """The compared runs' table as the screen shows it; with `error`, what went wrong instead."""

    def __init__(self, ids: list[int], headers: list[str], rows: list[list[str]], error: str | None = None) -> None:
        super().__init__()
        self.ids = ids
        self.headers = headers
        self.rows = rows
        self.error = error


class Exported(Message, bubble=False):
    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path


class HostsLoaded(Message, bubble=False):
    """Every host sharing the store, as `zerodeck hosts --json` lists them (issue 14)."""

    def __init__(self, hosts: list[dict[str, Any]]) -> None:
        super().__init__()
        self.hosts = hosts
