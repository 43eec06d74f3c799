"""The Textual app: `make_app()` builds it for the CLI, the tests and the benchmark alike.

Everything that can block runs in a worker thread: one poller per telemetry source (never
overlapping itself), one watcher for the store's active runs and the followed run's log, and
short one-off workers for catalog, plans and run history. Quitting only closes the UI: runs belong
to their supervisors and keep going.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import get_current_worker
from zerodeck.core.telemetry.poller import adapted_interval
from zerodeck.tui.messages import FrameReady, Notice, ProgressReady, RunsChanged
from zerodeck.tui.services import LogFollower, Services, progress_of, utcnow
from zerodeck.tui.telemetry import History, RunScope, Source, default_source
from zerodeck.tui.view import Frame, Progress, RunRow

LOG_KEEP = 500
LOSS_KEEP = 600  # loss points kept for the live sparkline
SCOPE_EVERY_S = 5.0  # how often the followed run's process list is re-read


def _catalog() -> Screen[None]:
    from zerodeck.tui.screens.catalog import CatalogScreen

    return CatalogScreen()


def _live() -> Screen[None]:
    from zerodeck.tui.screens.live import LiveScreen

    return LiveScreen()


def _runs() -> Screen[None]:
    from zerodeck.tui.screens.runs import RunsScreen

    return RunsScreen()


def _compare() -> Screen[None]:
    from zerodeck.tui.screens.compare import CompareScreen

    return CompareScreen()


class ZerodeckApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "zerodeck"
    ENABLE_COMMAND_PALETTE = False
    MODES = {"catalog": _catalog, "live": _live, "runs": _runs, "compare": _compare}
    BINDINGS = [
        Binding("1", "switch_mode('catalog')", "Catalog", show=False),
        Binding("2", "switch_mode('live')", "Live", show=False),
        Binding("3", "switch_mode('runs')", "Runs", show=False),
        Binding("4", "switch_mode('compare')", "Compare", show=False),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, services: Services, source: Source, poll_interval: float = 1.0,
                 watch_interval: float = 1.0, reconcile: bool = True, scope: RunScope | None = None,
                 mode: str = "catalog") -> None:
        super().__init__()
        self.start_mode = mode
        self.reconcile_on_start = reconcile
        self.services = services
        self.source = source
        self.poll_interval = poll_interval
        self.watch_interval = watch_interval
        self.animation_level = "none"  # slow SSH links: no animations
        self.history = History()
        self.latest_frame: Frame | None = None
        self.frames = 0
        self._frame_pending = False
        self.active_runs: list[RunRow] = []
        self.progress: Progress | None = None
        self.log_lines: deque[str] = deque(maxlen=LOG_KEEP)
        self.followed_run: int | None = None
        self.compare_ids: list[int] = []
        self.scope = scope or RunScope()
        self.run_scope_id: int | None = None
        self._scope_for: int | None = None
        self._scope_at = 0.0
        self._stop = threading.Event()
        self._follow_changed = threading.Event()

    @property
    def clock(self) -> Callable[[], datetime]:
        return self.services.clock

    def on_mount(self) -> None:
        self.switch_mode(self.start_mode)
        self.poll_telemetry()
        self.watch_runs()

    def on_unmount(self) -> None:
        self._stop.set()

    async def action_quit(self) -> None:
        self._stop.set()
        self.exit(0)

    # -- telemetry --------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="telemetry", exit_on_error=False)
    def poll_telemetry(self) -> None:
        worker = get_current_worker()
        while not worker.is_cancelled and not self._stop.is_set():
            started = time.monotonic()
            self._refresh_scope(started)
            try:
                frame = self.source()
            except Exception as exc:  # a source failure is shown, never raised into the UI
                frame = Frame(source="?", error=f"{type(exc).__name__}: {exc}")
            pids = self.scope.pids
            if pids and frame.cards:
                frame = replace(frame, mine=frozenset(c.key for c in frame.cards if pids & set(c.pids)))
            self.latest_frame = frame
            if not self._frame_pending:
                self._frame_pending = True
                self.post_message(FrameReady())
            took = time.monotonic() - started
            self._stop.wait(max(0.05, adapted_interval(self.poll_interval, took) - took))

    def _refresh_scope(self, now: float) -> None:
        """The followed run's processes, by the launcher's tag; a scan of /proc, so every few polls."""
        run_id = self.run_scope_id
        if run_id is None:
            self.scope.pids = None
            return
        if run_id == self._scope_for and now - self._scope_at < SCOPE_EVERY_S:
            return
        try:
            from zerodeck.core.launch.procs import tagged_pids

            self.scope.pids = tagged_pids(run_id)
        except Exception:
            self.scope.pids = None
        self._scope_for, self._scope_at = run_id, now

    def on_frame_ready(self, _msg: FrameReady) -> None:
        self._frame_pending = False
        frame = self.latest_frame
        if frame is None:
            return
        self.frames += 1
        self.history.add(frame)
        screen = self.screen
        if hasattr(screen, "show_frame"):
            screen.show_frame(frame)

    # -- runs -------------------------------------------------------------------------------
    def follow(self, run_id: int | None) -> None:
        self.followed_run = run_id
        self._follow_changed.set()

    @work(thread=True, exclusive=True, group="runs", exit_on_error=False)
    def watch_runs(self) -> None:
        worker = get_current_worker()
        follower: LogFollower | None = None
        following: int | None = None
        last_active: list[RunRow] | None = None
        last_progress: Progress | None = None
        losses: deque[float] = deque(maxlen=LOSS_KEEP)
        last_point: tuple[int, float | None, float | None] | None = None
        if self.reconcile_on_start:
            try:
                for run_id, what in self.services.reconcile():
                    self.post_message(Notice(f"run {run_id}: supervisor was gone; "
                                             f"{'re-adopted' if what == 'adopted' else 'marked lost'}"))
            except Exception as exc:
                self.post_message(Notice(f"reconcile: {exc}"))
        while not worker.is_cancelled and not self._stop.is_set():
            try:
                active = self.services.active_runs()
            except Exception:
                active = []
            if active != last_active:
                last_active = active
                self.post_message(RunsChanged(active))
            if self.followed_run is None and active:
                self.followed_run = active[0].id  # re-attach to a run already going
            run_id = self.followed_run
            reset = run_id != following
            if reset:
                following = run_id
                follower = None
                losses.clear()
                last_point = None
            progress = None
            lines: list[str] = []
            if run_id is not None:
                try:
                    row, points = self.services.run_and_points(run_id, last_point[0] if last_point else None)
                    losses.extend(p[1] for p in points if p[1] is not None)
                    last_point = points[-1] if points else last_point
                    progress = progress_of(row, tuple(losses), last_point, self.clock())
                    if follower is None:
                        follower = LogFollower(progress.run.log_path)
                    elif follower.path != progress.run.log_path:
                        follower = LogFollower(progress.run.log_path)
                        reset = True
                    lines = follower.poll()
                except Exception:
                    progress = None
            if reset or lines or progress != last_progress:
                last_progress = progress
                self.post_message(ProgressReady(progress, lines, reset))
            self._follow_changed.wait(self.watch_interval)
            self._follow_changed.clear()

    def on_notice(self, msg: Notice) -> None:
        self.notify(msg.text, timeout=8)

    def on_runs_changed(self, msg: RunsChanged) -> None:
        self.active_runs = msg.active
        if hasattr(self.screen, "show_active"):
            self.screen.show_active(msg.active)

    def on_progress_ready(self, msg: ProgressReady) -> None:
        self.progress = msg.progress
        run = msg.progress.run if msg.progress is not None else None
        self.run_scope_id = run.id if run is not None and run.active else None
        if msg.reset_log:
            self.log_lines.clear()
        self.log_lines.extend(msg.log_lines)
        if hasattr(self.screen, "show_progress"):
            self.screen.show_progress(msg.progress, msg.log_lines, msg.reset_log)


def make_app(store_url: str | None = None, source: Source | None = None,
             clock: Callable[[], datetime] | None = None, catalog_dirs: list[Path] | None = None,
             poll_interval: float = 1.0, watch_interval: float = 1.0, reconcile: bool = True,
             mode: str = "catalog") -> ZerodeckApp:
    """The app, with its store, telemetry source and clock injected (the tests pass their own)."""
    if store_url:
        # The supervisors this app launches, and the core calls that open their own session, find
        # the store through the environment: they must all write where this app reads.
        os.environ["ZERODECK_DB"] = store_url
    services = Services(store_url=store_url, catalog_dirs=catalog_dirs, clock=clock or utcnow)
    scope = RunScope()
    return ZerodeckApp(services, source or default_source(scope), poll_interval=poll_interval,
                       watch_interval=watch_interval, reconcile=reconcile, scope=scope, mode=mode)


def run() -> int:
    app = make_app()
    result = app.run()
    return int(result or 0)
