"""The Textual app: `make_app()` builds it for the CLI, the tests and the benchmark alike.

Everything that can block runs in a worker thread: the core telemetry `Poller` in one thread, which
posts each snapshot as a message that replaces any still queued; one watcher for the store's active
runs and the followed run's log; and short one-off workers for catalog, plans and run history. The
app is given its `Store` and passes it down; it never steers core through the environment. Quitting
only closes the UI: runs belong to their supervisors and keep going.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import work
from textual.app import App, ScreenStackError, UnknownModeError
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import get_current_worker
from zerodeck.core.i18n import _
from zerodeck.core.telemetry.model import Snapshot
from zerodeck.core.telemetry.poller import Poller
from zerodeck.core.telemetry.sources import DEFAULT_TIMEOUT, Source, make_source
from zerodeck.store.errors import StoreUnreachable
from zerodeck.tui.messages import (
    LaunchRequested,
    LoadFailed,
    Notice,
    ProgressReady,
    RunLaunched,
    RunsChanged,
    TelemetrySnapshot,
    WarmedUp,
)
from zerodeck.tui.screens.base import ZerodeckScreen
from zerodeck.tui.services import LogFollower, Services, progress_of, utcnow
from zerodeck.tui.telemetry import History, frame_from_snapshot
from zerodeck.tui.view import Curves, Frame, Progress
from zerodeck.tui.widgets.text import error_line

if TYPE_CHECKING:
    from zerodeck.store.api import Store  # SQLAlchemy: imported by the first worker, after the first paint
    from zerodeck.store.records import RunRecord

LOG_KEEP = 500
LOSS_KEEP = 600  # loss points kept for the live sparkline
CURVE_KEEP = 5000  # points per live curve: bounded, so a week-long run keeps the view's memory flat
SCOPE_EVERY_S = 5.0  # how often the followed run's process list is re-read
WARM_UP_CHECK_S = 0.5  # how often start-up looks for an idle moment to warm up in
LONG_LIVED = frozenset({"telemetry", "runs"})  # worker groups that never finish: not a sign of work


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
        Binding("1", "switch_mode('catalog')", _("Catalog"), show=False),
        Binding("2", "switch_mode('live')", _("Live"), show=False),
        Binding("3", "switch_mode('runs')", _("Runs"), show=False),
        Binding("4", "switch_mode('compare')", _("Compare"), show=False),
        # Outside a filter box only: there, q is a letter (an Input consumes printable keys, so
        # this binding is neither run nor shown). It asks, and `q` again quits (`QuitScreen`): a
        # word typed without `/` never closes the UI. Ctrl+Q (Textual's) quits at once. Quitting
        # closes the UI only; runs keep going.
        Binding("q", "ask_quit", _("Quit")),
    ]

    def __init__(self, services: Services, source: Source | None = None, poll_interval: float = 1.0,
                 watch_interval: float = 1.0, reconcile: bool = True, with_host: bool = True,
                 telemetry_timeout: float = DEFAULT_TIMEOUT, mode: str = "catalog") -> None:
        super().__init__()
        self.start_mode = mode
        self.reconcile_on_start = reconcile
        self.services = services
        services.watch_supervisors = reconcile
        self.source = source  # None: the best source of this machine, chosen in the polling thread
        self.poll_interval = poll_interval
        self.watch_interval = watch_interval
        self.with_host = with_host
        self.telemetry_timeout = telemetry_timeout
        self.animation_level = "none"  # slow SSH links: no animations
        self.poller: Poller | None = None
        self.history = History()
        self.latest_frame: Frame | None = None
        self.frames = 0
        self.active_runs: list[RunRecord] = []
        self.progress: Progress | None = None
        self.log_lines: deque[str] = deque(maxlen=LOG_KEEP)
        self.followed_run: int | None = None
        self.compare_ids: list[int] = []
        self.run_scope_id: int | None = None  # the followed run while it is active
        self.run_scope_tag: str | None = None  # its processes' ZERODECK_RUN_TAG: the run directory
        self.run_pids: set[int] | None = None  # its processes, by the launcher's tag
        self._scope_for: int | None = None
        self._scope_at = 0.0
        self._stop = threading.Event()
        self._follow_changed = threading.Event()

    @property
    def clock(self) -> Callable[[], datetime]:
        return self.services.clock

    def on_mount(self) -> None:
        # Packages whose __init__ imports their own submodules are imported here, once, before any
        # worker thread starts: two threads first importing `zerodeck.core.recipe` and one of its
        # submodules at the same moment can trip the import system's deadlock detection, which hands
        # one of them a half-initialised module (seen as a `KeyError: 'zerodeck.core.recipe'` toast
        # and an empty catalog). About 0.2 s, spent by the catalog's worker anyway.
        import zerodeck.core.compare
        import zerodeck.core.recipe  # noqa: F401

        self.switch_mode(self.start_mode)
        self.poll_telemetry()
        self.watch_runs()
        self._warm_timer = self.set_interval(WARM_UP_CHECK_S, self._warm_up_when_idle)

    # -- warming up ---------------------------------------------------------------------------
    def _warm_up_when_idle(self) -> None:
        """Once nothing the user waits for is being read (the first screen's rows, the planner's
        verdicts): warming up earlier would take the GIL from them."""
        if any(w.is_running and w.group not in LONG_LIVED for w in self.workers):
            return
        self._warm_timer.stop()
        self._warm_up()

    @work(thread=True, group="warm-up", exit_on_error=False)
    def _warm_up(self) -> None:
        from zerodeck.tui.warmup import import_screens

        import_screens()
        self.post_message(WarmedUp())

    def on_warmed_up(self, _msg: WarmedUp) -> None:
        from zerodeck.tui.warmup import add_styles

        add_styles(self.stylesheet)

    def on_unmount(self) -> None:
        self._halt()

    def action_ask_quit(self) -> None:
        from zerodeck.tui.screens.confirm import QuitScreen

        def answered(yes: bool | None) -> None:
            if yes:
                self._halt()
                self.exit(0)

        if not isinstance(self.screen, QuitScreen):
            self.push_screen(QuitScreen(), answered)

    async def action_quit(self) -> None:
        self._halt()
        self.exit(0)

    def _halt(self) -> None:
        self._stop.set()
        poller = self.poller
        if poller is not None:
            poller.stop(join_timeout=0)
            # This worker runs the poller's loop itself, so stop() has no thread to wait for: kill a probe
            # still in flight (a hung npu-smi) rather than let the worker linger until its time-out.
            cancel = getattr(poller.source, "cancel", None)
            if callable(cancel):
                with contextlib.suppress(Exception):
                    cancel()

    # -- telemetry --------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="telemetry", exit_on_error=False)
    def poll_telemetry(self) -> None:
        """The core Poller's loop, in this one worker thread: it never overlaps itself, stretches its
        interval when the source is slow, bounds each read by a time-out and marks a failed read's
        cards stale."""
        # Choosing probes NVML and PATH: done here, after the first screen is painted.
        source = self.source or make_source(pids=self._run_pids_or_none)
        poller = Poller(source, self._snapshot_read, interval=self.poll_interval, timeout=self.telemetry_timeout,
                        with_host=self.with_host)
        self.poller = poller
        if not self._stop.is_set():  # set before `poller` was visible to `_halt`: never start
            poller.run()

    def _run_pids_or_none(self) -> set[int] | None:
        """The CPU source shows the followed run's ranks, or every rank process when none is followed."""
        return self.run_pids or None

    def _snapshot_read(self, snap: Snapshot) -> None:
        """In the polling thread: the frame, with the followed run's cards marked, to the event loop."""
        self._refresh_scope(time.monotonic())
        progress = self.progress
        card_gb = progress.run.card_gb if progress is not None and progress.run.id == self.followed_run else None
        self.post_message(TelemetrySnapshot(frame_from_snapshot(snap, self.run_pids, card_gb)))

    def _refresh_scope(self, now: float) -> None:
        """The followed run's processes, by the launcher's tag; a scan of /proc, so every few polls."""
        run_id, tag = self.run_scope_id, self.run_scope_tag
        if run_id is None or not tag:
            self.run_pids = None
            return
        if run_id == self._scope_for and now - self._scope_at < SCOPE_EVERY_S:
            return
        try:
            from zerodeck.core.launch.procs import tagged_pids  # psutil and the launcher: ~45 ms of start-up

            self.run_pids = tagged_pids(tag)  # the launcher tags a run's processes with its directory
        except Exception:
            self.run_pids = None
        self._scope_for, self._scope_at = run_id, now

    def on_telemetry_snapshot(self, msg: TelemetrySnapshot) -> None:
        frame = self.latest_frame = msg.frame
        self.frames += 1
        self.history.add(frame)
        screen = self._shown()
        if screen is not None:
            screen.show_frame(frame)

    def _shown(self) -> ZerodeckScreen | None:
        """The screen to update, or None: a dialog is on top, or the app is closing (a worker's
        message can arrive after the last screen has gone)."""
        if self._stop.is_set() or not self.is_running:  # shutting down: screens lose their widgets
            return None
        try:
            screen = self.screen
        except (ScreenStackError, UnknownModeError):
            return None
        return screen if isinstance(screen, ZerodeckScreen) else None

    # -- runs -------------------------------------------------------------------------------
    def follow(self, run_id: int | None) -> None:
        self.followed_run = run_id
        self._follow_changed.set()

    @work(thread=True, exclusive=True, group="runs", exit_on_error=False)
    def watch_runs(self) -> None:
        worker = get_current_worker()
        follower: LogFollower | None = None
        following: int | None = None
        last_active: list[RunRecord] | None = None
        last_progress: Progress | None = None
        losses: deque[float] = deque(maxlen=LOSS_KEEP)
        loss_curve: deque[tuple[int, float]] = deque(maxlen=CURVE_KEEP)
        sps_curve: deque[tuple[int, float]] = deque(maxlen=CURVE_KEEP)
        last_point = None
        # The losses and curves as tuples, rebuilt only when points were added: the same objects from
        # one second to the next make comparing the progress (here and in the plots) cost nothing.
        added, log_gen = 0, 0
        shared: tuple[tuple[Any, ...], tuple[float, ...], Curves] | None = None
        from zerodeck.core.outcome.metrics import MetricsFollower  # in this thread: not on the first paint

        evals = MetricsFollower()
        if self.reconcile_on_start:
            try:
                for lost_id, what in self.services.reconcile():
                    done = _("re-adopted") if what == "adopted" else _("marked lost")
                    self.post_message(Notice(_("run {run_id}: supervisor was gone; {what}")
                                             .format(run_id=lost_id, what=done)))
            except Exception as exc:
                self.post_message(Notice(_("reconcile: {error}").format(error=exc)))
        away = False  # the store could not be reached at the last poll: said once, and once when back
        while not worker.is_cancelled and not self._stop.is_set():
            try:
                active = self.services.active_runs()
            except StoreUnreachable as exc:
                # The runs go on (their supervisors keep their records): show them as last seen.
                active = last_active if last_active is not None else []
                if not away:
                    self.post_message(Notice(_("{error}; runs go on, shown as last seen until it is back")
                                             .format(error=error_line(exc))))
                away = True
            except Exception:
                active = []
            else:
                if away:
                    self.post_message(Notice(_("store reachable again")))
                away = False
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
                loss_curve.clear()
                sps_curve.clear()
                last_point = None
                added = 0
            progress = None
            lines: list[str] = []
            if run_id is not None:
                try:
                    run, points = self.services.run_and_points(run_id, last_point.step if last_point else None)
                    losses.extend(p.loss for p in points if p.loss is not None)
                    loss_curve.extend((p.step, p.loss) for p in points if p.loss is not None)
                    sps_curve.extend((p.step, p.samples_per_s) for p in points if p.samples_per_s is not None)
                    last_point = points[-1] if points else last_point
                    added += len(points)
                    if follower is None or follower.path != run.log_path:
                        reset = reset or follower is not None
                        follower = LogFollower(run.log_path)
                        evals = MetricsFollower()
                        log_gen += 1
                    lines = follower.poll()
                    for line in lines:
                        # Eval loss is only in the log (the store keeps training points). Only eval lines
                        # and tqdm bars (their step) are fed, so the follower holds no per-step points.
                        if "eval_loss" in line or "%|" in line:
                            evals.feed(line)
                    key = (run_id, added, log_gen, len(evals.eval_points))
                    if shared is None or shared[0] != key:
                        shared = (key, tuple(losses), Curves(
                            loss=tuple(loss_curve), samples_per_s=tuple(sps_curve),
                            eval_loss=tuple(evals.eval_points[-CURVE_KEEP:])))
                    progress = replace(progress_of(run, shared[1], last_point, self.clock()), curves=shared[2],
                                       cluster=self.services.cluster_view(run_id))
                except StoreUnreachable:
                    progress = last_progress  # the run goes on; its last known state stays on screen
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
        screen = self._shown()
        if screen is not None:
            screen.show_active(msg.active)

    def on_progress_ready(self, msg: ProgressReady) -> None:
        self.progress = msg.progress
        run = msg.progress.run if msg.progress is not None else None
        self.run_scope_id = run.id if run is not None and run.active else None
        self.run_scope_tag = run.workdir if self.run_scope_id is not None and run is not None else None
        if msg.reset_log:
            self.log_lines.clear()
        self.log_lines.extend(msg.log_lines)
        screen = self._shown()
        if screen is not None:
            screen.show_progress(msg.progress, msg.log_lines, msg.reset_log)

    # -- launching ---------------------------------------------------------------------------
    def on_launch_requested(self, msg: LaunchRequested) -> None:
        self.ask_launch(msg.name)

    def ask_launch(self, name: str) -> None:
        """Launch a catalog recipe once the user has seen where it runs and said yes (Enter / y).

        Screens call this from a key handler: the dialog is on the stack before the next key is
        read, so the rest of a word typed by mistake goes to the dialog, which ignores it."""
        from zerodeck.tui.screens.confirm import launch_screen

        def answered(yes: bool | None) -> None:
            if yes:
                self.notify(_("launching {name} …").format(name=name), timeout=3)
                self._launch(name)

        self.push_screen(launch_screen(self.services, name), answered)

    @work(thread=True, group="launch")
    def _launch(self, name: str) -> None:
        try:
            self.post_message(RunLaunched(self.services.launch(name), name))
        except Exception as exc:
            self.post_message(LoadFailed(_("launch {name}: {error}").format(name=name, error=error_line(exc))))

    def on_run_launched(self, msg: RunLaunched) -> None:
        self.notify(_("run {run_id} started: {name}").format(run_id=msg.run_id, name=msg.name), timeout=6)
        self.follow(msg.run_id)
        self.switch_mode("live")

    def on_load_failed(self, msg: LoadFailed) -> None:
        self.notify(msg.error, severity="error", timeout=8)


def make_app(store: Store | None = None, source: Source | None = None,
             clock: Callable[[], datetime] | None = None, catalog_dirs: list[Path] | None = None,
             poll_interval: float = 1.0, watch_interval: float = 1.0, reconcile: bool = True,
             with_host: bool = True, mode: str = "catalog") -> ZerodeckApp:
    """The app, with its store, telemetry source and clock injected (the tests pass their own).

    With no store, the one the environment names (`ZERODECK_DB`, else `$ZERODECK_HOME`), opened once
    by the services on first use: this is the TUI process's entry. With no source, the best of this
    machine (npu-smi, NVIDIA, else the CPU ranks of the followed run). `with_host` adds the host's RAM
    and CPU to each read.
    """
    services = Services(store, catalog_dirs=catalog_dirs, clock=clock or utcnow)
    return ZerodeckApp(services, source, poll_interval=poll_interval, watch_interval=watch_interval,
                       reconcile=reconcile, with_host=with_host, mode=mode)


def run(store: Store | None = None) -> int:
    app = make_app(store)
    result = app.run()
    return int(result or 0)
