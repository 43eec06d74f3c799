"""Live: every card of the telemetry source (8 NPUs, 16 A3 dies, GPUs or the demo's CPU ranks),
the host's RAM, and the followed run's progress and log tail.

It shows the cards with no run at all (a live npu-smi view). The app's watcher re-attaches to a
run already going; `n` steps through the active runs, `s` asks the followed run's supervisor to stop.
"""

from __future__ import annotations

from datetime import datetime

from rich.text import Span, Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Footer, Log, Static
from zerodeck.store.records import RunRecord
from zerodeck.tui.screens.stopping import StopsRuns
from zerodeck.tui.view import Frame, Progress, fmt_duration, fmt_num, run_duration_s
from zerodeck.tui.widgets.cards import CardRow, HostRow
from zerodeck.tui.widgets.modebar import ModeBar
from zerodeck.tui.widgets.text import outcome_text, sparkline


class LiveScreen(StopsRuns):
    BINDINGS = [Binding("n", "next_run", "Next run"), Binding("s", "stop", "Stop run")]

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, CardRow] = {}
        self.progress: Progress | None = None
        self._shown_text: dict[str | None, tuple[str, tuple[Span, ...]]] = {}

    def compose(self) -> ComposeResult:
        yield ModeBar()
        yield Static("", id="live-status")
        yield VerticalScroll(id="cards")
        yield HostRow(id="host")
        with Vertical(id="run-panel"):
            yield Static("", id="progress")
            yield Log(id="log", max_lines=500, auto_scroll=True)
        yield Footer()

    def on_mount(self) -> None:
        self._replay()

    def on_screen_resume(self) -> None:
        self._replay()

    def _replay(self) -> None:
        app = self.zapp
        if app.latest_frame is not None:
            self.show_frame(app.latest_frame)
        log = self.query_one("#log", Log)
        log.clear()
        log.write_lines(list(app.log_lines))
        self.show_progress(app.progress, [], False)

    # -- telemetry ---------------------------------------------------------------------------
    def show_frame(self, frame: Frame) -> None:
        history = self.zapp.history
        container = self.query_one("#cards", VerticalScroll)
        keys = [c.key for c in frame.cards]
        if list(self.rows) != keys:
            container.remove_children()
            self.rows = {c.key: CardRow(c) for c in frame.cards}
            container.mount_all(self.rows.values())
        for c in frame.cards:
            self.rows[c.key].show(c, history.cards.get(c.key, ()), c.key in frame.mine)
        self.query_one("#host", HostRow).show(frame.host, history.host)
        status = Text(f" {frame.source}: {len(frame.cards)} card(s)", style="bold")
        if frame.mine:
            status.append(f"  * = this run's processes ({len(frame.mine)})", style="dim")
        if frame.error:
            status.append(f"  {frame.error}" + ("; showing the last good read" if frame.stale else ""), style="red")
        elif not frame.cards:
            status.append("  no cards visible (no npu-smi, no GPU, no run)", style="dim")
        self._set(self.query_one("#live-status", Static), status)

    # -- the followed run ---------------------------------------------------------------------
    def show_progress(self, progress: Progress | None, lines: list[str], reset: bool) -> None:
        self.progress = progress
        # With no run, the run panel shrinks to one line so sixteen dies fit on 24 rows.
        self.query_one("#run-panel").set_class(progress is None, "-idle")
        log = self.query_one("#log", Log)
        if reset:
            log.clear()
        if lines:
            log.write_lines(lines)
        self._set(self.query_one("#progress", Static), progress_text(progress, self.zapp.clock()))

    def show_active(self, active: list[RunRecord]) -> None:
        pass  # the progress line says what is followed; active runs are reached with `n`

    def _set(self, widget: Static, text: Text) -> None:
        # Only touch the widget when its text changes: nothing is redrawn on an idle screen.
        shown = (text.plain, tuple(text.spans))
        if self._shown_text.get(widget.id) != shown:
            self._shown_text[widget.id] = shown
            widget.update(text)

    def action_next_run(self) -> None:
        active = self.zapp.active_runs
        if not active:
            self.notify("no run is going")
            return
        ids = [r.id for r in active]
        cur = self.zapp.followed_run
        nxt = ids[(ids.index(cur) + 1) % len(ids)] if cur in ids else ids[0]
        self.zapp.follow(nxt)

    def action_stop(self) -> None:
        p = self.progress
        if p is None or not p.run.active:
            self.notify("no running run is followed", severity="warning")
            return
        self._stop(p.run.id)


def progress_text(p: Progress | None, now: datetime) -> Text:
    if p is None:
        return Text(" no run followed: launch one from the catalog (1), or `n` for a running one", style="dim")
    r = p.run
    t = Text(f" run {r.id} {r.name} ", style="bold")
    t.append_text(outcome_text(r.outcome or r.status))
    step = "-" if p.step is None else str(p.step)
    total = "?" if p.total is None else str(p.total)
    t.append(f"  step {step}/{total}")
    if p.total and p.step is not None:
        t.append(f" ({100 * p.step / p.total:.0f}%)")
    t.append(f"  {fmt_num(p.samples_per_s, '{:.1f}')} samples/s")
    dur = run_duration_s(r, now)
    t.append(f"  {fmt_duration(dur)}")
    if p.eta_s is not None:
        t.append(f"  ETA {fmt_duration(p.eta_s)}")
    t.append("\n loss ")
    if p.losses:
        t.append(f"{p.losses[-1]:.4f} ")
        t.append(sparkline(p.losses, 60), style="cyan")
    else:
        t.append("-", style="dim")
    if r.reason:
        t.append(f"\n {r.reason}", style="red")
    return t
