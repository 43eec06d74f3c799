"""Live: every card of the telemetry source (8 NPUs, 16 A3 dies, GPUs or the demo's CPU ranks)
under the source's own column headers, the processes on them, the host's RAM, and the followed
run's progress, log tail and training curves.

It shows the cards with no run at all (a live npu-smi view). The app's watcher re-attaches to a
run already going; `n` steps through the active runs, `s` asks the followed run's supervisor to stop,
`c` shows the curves where the log tail was (narrow terminals; wide ones show both).
"""

from __future__ import annotations

import time
from collections import deque
from datetime import datetime

from rich.text import Span, Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.events import Resize
from textual.timer import Timer
from textual.widgets import Static
from zerodeck.core.i18n import _
from zerodeck.store.records import RunRecord
from zerodeck.tui.screens.stopping import StopsRuns
from zerodeck.tui.view import Frame, Progress, fmt_duration, fmt_num, run_duration_s
from zerodeck.tui.widgets.cards import CardHeader, CardRow, HostRow, ProcList
from zerodeck.tui.widgets.curves import CurvesPlot
from zerodeck.tui.widgets.footer import KeysFooter
from zerodeck.tui.widgets.logtail import LogTail
from zerodeck.tui.widgets.modebar import ModeBar
from zerodeck.tui.widgets.text import crop, outcome_text

WIDE = 110  # from this width the log tail and the curves sit side by side
REGULAR = 3  # telemetry frames that arrived within REGULAR_S: the run's news waits for the next one
REGULAR_S = 3.5
HOLD_S = 1.5  # the longest a run's news waits for a frame
TALL = 34  # from this height the run panel grows so the curves have room


class LiveScreen(StopsRuns):
    BINDINGS = [Binding("n", "next_run", _("Next run")), Binding("s", "stop", _("Stop run")),
                Binding("c", "toggle_curves", _("Curves/log"))]

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, CardRow] = {}
        self.kind = ""
        self.progress: Progress | None = None
        self.curves_first = False  # narrow terminals: the curves instead of the log tail
        self._frame_times: deque[float] = deque(maxlen=REGULAR)
        self._held: tuple[Progress | None, list[str], bool] | None = None  # run news held for the next frame
        self._hold_timer: Timer | None = None
        self._last_frame: Frame | None = None
        self._drawn: Progress | None = None  # the progress the run panel shows (`progress`: the newest)
        self._shown_text: dict[str | None, tuple[str, tuple[Span, ...]]] = {}

    def compose(self) -> ComposeResult:
        yield ModeBar()
        yield Static("", id="live-status")
        yield CardHeader(id="card-header")
        with VerticalScroll(id="cards"):
            yield ProcList(id="procs")
        yield HostRow(id="host")
        with Vertical(id="run-panel"):
            yield Static("", id="progress")
            with Horizontal(id="run-body"):
                yield LogTail(id="log")
                with Vertical(id="curves"):
                    yield CurvesPlot("loss", id="loss-plot")
                    yield CurvesPlot("throughput", id="speed-plot")
        yield KeysFooter()

    def on_mount(self) -> None:
        self._replay()
        # Elapsed time moves every second even when the run prints nothing (a long first step). Each
        # telemetry frame sets it too, in the frame's own redraw; this timer then finds the line as it
        # is and draws nothing, so it adds a redraw of its own only when telemetry is slow.
        self.set_interval(1.0, self._tick)

    def on_screen_resume(self) -> None:
        self._replay()

    def on_resize(self, event: Resize) -> None:
        self._arrange(event.size.width, event.size.height)

    def _arrange(self, width: int, height: int) -> None:
        wide = width >= WIDE
        self.query_one("#log").display = wide or not self.curves_first
        self.query_one("#curves").display = wide or self.curves_first
        # Curves instead of the log on a narrow terminal: the run panel takes rows from the card list.
        self.query_one("#run-panel").set_class(height >= TALL or (self.curves_first and not wide), "-tall")

    def action_toggle_curves(self) -> None:
        self.curves_first = not self.curves_first
        self._arrange(self.size.width, self.size.height)

    def _tick(self) -> None:
        self._set(self.query_one("#progress", Static), progress_text(self._drawn, self.zapp.clock(), self._width()))

    def _width(self) -> int:
        return self.size.width or 80

    def _replay(self) -> None:
        app = self.zapp
        self._held = None  # the app's log lines include whatever was held
        if app.latest_frame is not None:
            self.show_frame(app.latest_frame)
        log = self.query_one("#log", LogTail)
        log.clear()
        log.write_lines(list(app.log_lines))
        self._draw_progress(app.progress, [], False)

    # -- telemetry ---------------------------------------------------------------------------
    def show_frame(self, frame: Frame) -> None:
        history = self.zapp.history
        container = self.query_one("#cards", VerticalScroll)
        procs = self.query_one("#procs", ProcList)
        keys = [c.key for c in frame.cards]
        kind = frame.kind
        if list(self.rows) != keys or kind != self.kind:
            for row in self.rows.values():
                row.remove()
            self.rows = {c.key: CardRow(c, kind) for c in frame.cards}
            container.mount_all(self.rows.values(), before=procs)
            self.kind = kind
        self.query_one("#card-header", CardHeader).show(kind)
        for c in frame.cards:
            self.rows[c.key].show(c, history.cards.get(c.key, ()), c.key in frame.mine)
        procs.show(kind, frame.processes)
        self.query_one("#host", HostRow).show(frame.host, history.host)
        self._set(self.query_one("#live-status", Static), status_text(frame, self._width()))
        if frame is not self._last_frame:  # a replay on mount or resume is not a new read
            self._last_frame = frame
            self._frame_times.append(time.monotonic())
        self._release()  # the run's news held since the last frame, drawn in this frame's redraw
        self._tick()

    # -- the followed run ---------------------------------------------------------------------
    def show_progress(self, progress: Progress | None, lines: list[str], reset: bool) -> None:
        """The followed run moved. While telemetry frames come regularly (1 Hz), the drawing waits for
        the next frame, at most HOLD_S: both then share one redraw of the screen instead of two a
        second (issue 12: a redraw is most of the live view's CPU). Otherwise it is drawn now."""
        self.progress = progress
        t = self._frame_times
        if not (len(t) == REGULAR and time.monotonic() - t[0] < REGULAR_S):
            self._release()
            self._draw_progress(progress, lines, reset)
            return
        held_lines, held_reset = ([], False) if self._held is None else self._held[1:]
        if reset:
            held_lines, held_reset = [], True
        self._held = (progress, held_lines + list(lines), held_reset)
        if self._hold_timer is None:
            self._hold_timer = self.set_timer(HOLD_S, self._release)

    def _release(self) -> None:
        if self._hold_timer is not None:
            self._hold_timer.stop()
            self._hold_timer = None
        if self._held is not None:
            held, self._held = self._held, None
            self._draw_progress(*held)

    def _draw_progress(self, progress: Progress | None, lines: list[str], reset: bool) -> None:
        self._drawn = progress
        # With no run, the run panel shrinks to one line so sixteen dies fit on 24 rows.
        self.query_one("#run-panel").set_class(progress is None, "-idle")
        log = self.query_one("#log", LogTail)
        if reset:
            log.clear()
        if lines:
            log.write_lines(lines)
        if progress is not None:
            for plot in (self.query_one("#loss-plot", CurvesPlot), self.query_one("#speed-plot", CurvesPlot)):
                plot.show(progress.curves)
        self._set(self.query_one("#progress", Static), progress_text(progress, self.zapp.clock(), self._width()))

    def show_active(self, active: list[RunRecord]) -> None:
        pass  # the progress line says what is followed; active runs are reached with `n`

    def _set(self, widget: Static, text: Text) -> None:
        # Only touch the widget when its text changes: nothing is redrawn on an idle screen. Both lines
        # have fixed heights, so a new text needs no layout pass (the costliest part of a frame).
        shown = (text.plain, tuple(text.spans))
        if self._shown_text.get(widget.id) != shown:
            self._shown_text[widget.id] = shown
            widget.update(text, layout=False)

    def action_next_run(self) -> None:
        active = self.zapp.active_runs
        if not active:
            self.notify(_("no run is going"))
            return
        ids = [r.id for r in active]
        cur = self.zapp.followed_run
        nxt = ids[(ids.index(cur) + 1) % len(ids)] if cur in ids else ids[0]
        self.zapp.follow(nxt)

    def action_stop(self) -> None:
        p = self.progress
        if p is None or not p.run.active:
            self.notify(_("no running run is followed"), severity="warning")
            return
        self._stop(p.run.id)


def status_text(frame: Frame, width: int = 80) -> Text:
    """The line above the cards, one row at any width: the source, how many rows it drew, why a read
    failed."""
    n = len(frame.cards)
    what = _("rank(s)") if frame.kind == "cpu" else _("card(s)")
    t = Text(f" {frame.source}: {n} {what}", style="bold")
    if frame.processes:
        t.append(_(", {n} process(es)").format(n=len(frame.processes)))
    if frame.mine:
        t.append("  " + _("* = this run's ({n})").format(n=len(frame.mine)), style="dim")
    if frame.error:
        t.append(f"  {frame.error}" + (_("; showing the last good read") if frame.stale else ""), style="red")
    elif not frame.cards:
        t.append("  " + _("no cards visible (no npu-smi, no GPU, no run)"), style="dim")
    t.truncate(max(1, width - 1), overflow="ellipsis")
    return t


def progress_text(p: Progress | None, now: datetime, width: int = 80) -> Text:
    """The followed run in two rows that never wrap: what and where it is, then its latest numbers.
    Less important parts give way on a narrow terminal; the run's name is cut last."""
    room = max(20, width - 1)
    if p is None:
        return Text(crop(" " + _("no run followed: launch one from the catalog (1), or `n` for a running one"), room),
                    style="dim")
    r = p.run
    status = r.outcome or r.status
    step = "-" if p.step is None else str(p.step)
    total = "?" if p.total is None else str(p.total)
    at = f"step {step}/{total}"
    if p.total and p.step is not None:
        at += f" {100 * p.step / p.total:.0f}%"
    # Elapsed since the run started (started_at), ticking every second, not since the first step.
    parts = [at, fmt_duration(run_duration_s(r, now))]
    if p.cluster is not None:  # a Slurm run: where it runs, and whether it still waits in the queue
        parts.insert(0, p.cluster.text())
    if p.eta_s is not None:
        parts.append(f"ETA {fmt_duration(p.eta_s)}")
    fixed = len(f" run {r.id}  {status}") + sum(2 + len(x) for x in parts)
    name = crop(r.name, max(8, room - fixed))
    t = Text(f" run {r.id} {name} ", style="bold")
    t.append_text(outcome_text(status))
    for part in parts:
        if len(t) + 2 + len(part) > room:
            break
        t.append(f"  {part}")
    line2 = Text(" loss ")
    line2.append("-" if not p.losses else f"{p.losses[-1]:.4f}", style="cyan" if p.losses else "dim")
    if p.curves.eval_loss:
        line2.append(f"  eval {p.curves.eval_loss[-1][1]:.4f}", style="magenta")
    line2.append(f"  {fmt_num(p.samples_per_s, '{:.1f}')} samples/s")
    if r.reason:
        line2.append(f"  {r.reason}", style="red")
    line2.truncate(room, overflow="ellipsis")
    t.append("\n")
    t.append_text(line2)
    return t
