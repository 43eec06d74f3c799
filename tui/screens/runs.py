"""Runs: the history, newest first, with outcome (OOM in its own colour), duration, peak GiB per card
against the prediction, throughput and final loss. Enter opens a run's full record; `s` stops one;
space marks runs for Compare."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Static
from zerodeck.store.records import RunRecord
from zerodeck.tui.messages import LoadFailed, RunsLoaded, RunStopped
from zerodeck.tui.screens.stopping import StopsRuns
from zerodeck.tui.view import fmt_duration, run_duration_s, run_label
from zerodeck.tui.widgets.modebar import ModeBar
from zerodeck.tui.widgets.text import outcome_text

COLUMNS = ("", "id", "recipe", "outcome", "time", "peak/pred GiB", "samples/s", "loss")
SHOWN = 1000  # the newest runs listed; the title says how many the store holds


class RunsScreen(StopsRuns):
    BINDINGS = [
        Binding("o", "open", "Open"),  # Enter opens too (the table selects the row)
        Binding("s", "stop", "Stop"),
        Binding("space", "mark", "Mark"),
        Binding("c", "compare", "Compare marked"),
        Binding("r", "reload", "Reload"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[RunRecord] = []
        self.total = -1  # nothing loaded yet
        self.marked: set[int] = set()

    def compose(self) -> ComposeResult:
        yield ModeBar()
        yield Static("", id="runs-title")
        yield DataTable(id="runs", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#runs", DataTable)
        for col in COLUMNS:
            table.add_column(col, key=col or "mark")
        table.focus()
        self.load()

    def on_screen_resume(self) -> None:
        self.load()

    def show_active(self, active: list[RunRecord]) -> None:
        self.load()  # a run started or ended: its row changed

    def action_reload(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="runs-list")
    def load(self) -> None:
        try:
            self.post_message(RunsLoaded(*self.zapp.services.runs(limit=SHOWN)))
        except Exception as exc:
            self.post_message(LoadFailed(str(exc)))

    def on_runs_loaded(self, msg: RunsLoaded) -> None:
        if (msg.runs, msg.total) != (self.runs, self.total):
            self.runs, self.total = msg.runs, msg.total
            self.render_table()

    def on_run_stopped(self, msg: RunStopped) -> None:
        super().on_run_stopped(msg)
        self.load()

    def render_table(self) -> None:
        table = self.query_one("#runs", DataTable)
        row = table.cursor_row
        table.clear()
        now = self.zapp.clock()
        for r in self.runs:
            table.add_row(*run_cells(r, now, r.id in self.marked), key=str(r.id))
        if self.runs:
            table.move_cursor(row=min(row, len(self.runs) - 1))
        shown = f"{len(self.runs)} of {self.total}" if self.total > len(self.runs) else str(self.total)
        marked = f" · {len(self.marked)} marked" if self.marked else ""
        self.query_one("#runs-title", Static).update(Text(f" Runs: {shown}{marked}", style="bold"))

    def current(self) -> RunRecord | None:
        table = self.query_one("#runs", DataTable)
        if not self.runs or table.cursor_row >= len(self.runs):
            return None
        return self.runs[table.cursor_row]

    @on(DataTable.RowSelected, "#runs")
    def _row_selected(self) -> None:
        self.action_open()

    def action_open(self) -> None:
        r = self.current()
        if r is not None:
            from zerodeck.tui.screens.run_detail import RunDetailScreen

            self.app.push_screen(RunDetailScreen(r.id))

    def action_mark(self) -> None:
        r = self.current()
        if r is None:
            return
        self.marked ^= {r.id}
        table = self.query_one("#runs", DataTable)
        table.update_cell(str(r.id), "mark", "●" if r.id in self.marked else "")
        table.move_cursor(row=table.cursor_row + 1)
        self.render_title()

    def render_title(self) -> None:
        shown = f"{len(self.runs)} of {self.total}" if self.total > len(self.runs) else str(self.total)
        marked = f" · {len(self.marked)} marked" if self.marked else ""
        self.query_one("#runs-title", Static).update(Text(f" Runs: {shown}{marked}", style="bold"))

    def action_compare(self) -> None:
        current = self.current()
        ids = sorted(self.marked) or ([current.id] if current else [])
        self.zapp.compare_ids = ids
        self.app.switch_mode("compare")

    def action_stop(self) -> None:
        r = self.current()
        if r is None or not r.active:
            self.notify("that run is not running", severity="warning")
            return
        self._stop(r.id)


def run_cells(r: RunRecord, now: datetime, marked: bool = False) -> tuple[object, ...]:
    peak = "-" if r.measured_peak_gib is None else f"{r.measured_peak_gib:.1f}"
    pred = "-" if r.predicted_peak_gib is None else f"{r.predicted_peak_gib:.1f}"
    sps = "-" if r.samples_per_s is None else f"{r.samples_per_s:.2f}"
    loss = "-" if r.final_loss is None else f"{r.final_loss:.4f}"
    return ("●" if marked else "", str(r.id), r.name, outcome_text(run_label(r)),
            fmt_duration(run_duration_s(r, now)), f"{peak}/{pred}", sps, loss)
