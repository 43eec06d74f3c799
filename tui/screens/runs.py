"""Runs: the history, newest first, with outcome (OOM in its own colour), duration, peak GiB per card
against the prediction, throughput and final loss. Enter opens a run's full record; `s` stops one
(after asking); Space marks runs for Compare. A marked row shows a `●` and is drawn bold and
coloured: the character for NO_COLOR terminals, the style for a glance. The id and name stay fixed
while Left / Right scroll the rest; `v` chooses the columns shown. When the store holds runs of
several servers (issue 14) a host column says where each ran, and `h` opens the Hosts screen: every
server's cards, who holds them and its last heartbeat."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static
from zerodeck.core.i18n import _
from zerodeck.core.values import printable
from zerodeck.store.records import RunRecord
from zerodeck.tui.messages import LoadFailed, RunsLoaded, RunStopped
from zerodeck.tui.screens.stopping import StopsRuns
from zerodeck.tui.view import fmt_duration, run_duration_s, run_label
from zerodeck.tui.widgets.footer import KeysFooter
from zerodeck.tui.widgets.modebar import ModeBar
from zerodeck.tui.widgets.table import Table
from zerodeck.tui.widgets.text import error_line, outcome_text

COLUMNS = ("", "id", "recipe", "host", "outcome", "time", "peak/pred GiB", "samples/s", "loss")
HOST = 3  # shown only when the runs listed come from more than one host
KEYS = tuple(c or "mark" for c in COLUMNS)
FIXED = 3  # mark, id, recipe: what tells one row from another
SHOWN = 1000  # the newest runs listed; the title says how many the store holds
RESUME_CHECK_S = 0.3  # after the paint: even a short query in a worker holds the GIL a while
MARK = "●"
MARKED_STYLE = "bold magenta"  # the mark, the id and the name; the other cells turn bold only


class RunsScreen(StopsRuns):
    BINDINGS = [
        Binding("o", "open", _("Open")),  # Enter opens too (the table selects the row)
        Binding("s", "stop", _("Stop…")),
        Binding("space", "mark", _("Mark")),
        Binding("c", "compare", _("Compare marked")),
        Binding("v", "columns", _("Columns")),
        Binding("r", "reload", _("Reload")),
        Binding("h", "hosts", _("Hosts")),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[RunRecord] = []
        self.total = -1  # nothing loaded yet
        self.marked: set[int] = set()
        self.hidden: frozenset[str] = frozenset()
        self.stamp: tuple[Any, ...] | None = None  # `Services.runs_stamp()` of the rows shown
        self.many_hosts = False  # the runs listed come from several servers: the host column shows

    def compose(self) -> ComposeResult:
        yield ModeBar()
        yield Static("", id="runs-title")
        yield Table(id="runs", cursor_type="row", fixed_columns=FIXED)
        yield KeysFooter()

    def on_mount(self) -> None:
        self._add_columns()
        self.query_one("#runs", DataTable).focus()
        self.load()

    def shown_columns(self) -> list[int]:
        return [i for i, key in enumerate(KEYS)
                if i < FIXED or (key not in self.hidden and (i != HOST or self.many_hosts))]

    def _add_columns(self) -> None:
        table = self.query_one("#runs", DataTable)
        for i in self.shown_columns():
            table.add_column(COLUMNS[i], key=KEYS[i])

    def on_screen_resume(self) -> None:
        # Coming back, the table already shown is painted first; a moment later a cheap check says
        # whether any row changed, and only then are the rows read again (a thousand runs read in a
        # worker hold the GIL long enough to delay the next key by a few hundred milliseconds).
        if self.stamp is not None:
            self.set_timer(RESUME_CHECK_S, self.load)
        else:
            self.load()

    def show_active(self, active: list[RunRecord]) -> None:
        self.load()  # a run started or ended: its row changed

    def action_reload(self) -> None:
        self.load(force=True)

    @work(thread=True, exclusive=True, group="runs-list")
    def load(self, force: bool = False) -> None:
        try:
            services = self.zapp.services
            stamp = services.runs_stamp()  # before the rows: a change in between is seen next time
            if stamp == self.stamp and not force:
                self.post_message(RunsLoaded(None, self.total, stamp))
                return
            self.post_message(RunsLoaded(*services.runs(limit=SHOWN), stamp))
        except Exception as exc:
            self.post_message(LoadFailed(error_line(exc)))

    def on_runs_loaded(self, msg: RunsLoaded) -> None:
        if msg.runs is None:
            return
        self.stamp = msg.stamp
        if (msg.runs, msg.total) != (self.runs, self.total):
            self.runs, self.total = msg.runs, msg.total
            many = len({r.host for r in msg.runs if r.host}) > 1
            if many != self.many_hosts:
                self.many_hosts = many
                self.query_one("#runs", DataTable).clear(columns=True)
                self._add_columns()
            self.render_table()

    def on_run_stopped(self, msg: RunStopped) -> None:
        super().on_run_stopped(msg)
        self.load()

    def render_table(self) -> None:
        table = self.query_one("#runs", DataTable)
        row = table.cursor_row
        table.clear()
        now = self.zapp.clock()
        visible = self.shown_columns()
        for r in self.runs:
            cells = run_cells(r, now, r.id in self.marked)
            table.add_row(*(cells[i] for i in visible), key=str(r.id))
        if self.runs:
            table.move_cursor(row=min(row, len(self.runs) - 1))
        self.render_title()

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

            self.app.push_screen(RunDetailScreen(r.id, r))

    def action_mark(self) -> None:
        r = self.current()
        if r is None:
            return
        self.marked ^= {r.id}
        table = self.query_one("#runs", DataTable)
        cells = run_cells(r, self.zapp.clock(), r.id in self.marked)
        for i in self.shown_columns():  # the whole row changes style, not only its mark
            table.update_cell(str(r.id), KEYS[i], cells[i])
        table.move_cursor(row=table.cursor_row + 1)
        self.render_title()

    def render_title(self) -> None:
        shown = (_("{shown} of {total}").format(shown=len(self.runs), total=self.total)
                 if self.total > len(self.runs) else str(self.total))
        title = Text(" " + _("Runs: {shown}").format(shown=shown), style="bold")
        if self.marked:
            title.append(f" · {MARK} " + _("{n} marked").format(n=len(self.marked)), style=MARKED_STYLE)
            title.append("  " + _("c compares them"), style="dim")
        self.query_one("#runs-title", Static).update(title)

    def action_columns(self) -> None:
        from zerodeck.tui.screens.columns import ColumnChooser

        def chosen(hidden: frozenset[str] | None) -> None:
            if hidden is not None and hidden != self.hidden:
                self.hidden = hidden
                table = self.query_one("#runs", DataTable)
                table.clear(columns=True)
                self._add_columns()
                self.render_table()

        offered = [k for i, k in enumerate(KEYS) if i >= FIXED and (i != HOST or self.many_hosts)]
        self.app.push_screen(ColumnChooser(offered, self.hidden), chosen)

    def action_compare(self) -> None:
        current = self.current()
        ids = sorted(self.marked) or ([current.id] if current else [])
        self.zapp.compare_ids = ids
        self.app.switch_mode("compare")

    def action_hosts(self) -> None:
        from zerodeck.tui.screens.hosts import HostsScreen

        self.app.push_screen(HostsScreen())

    def action_stop(self) -> None:
        r = self.current()
        if r is None or not r.active:
            self.notify(_("that run is not running"), severity="warning")
            return
        self.ask_stop(r)


def run_cells(r: RunRecord, now: datetime, marked: bool = False) -> tuple[object, ...]:
    peak = "-" if r.measured_peak_gib is None else f"{r.measured_peak_gib:.1f}"
    pred = "-" if r.predicted_peak_gib is None else f"{r.predicted_peak_gib:.1f}"
    sps = "-" if r.samples_per_s is None else f"{r.samples_per_s:.2f}"
    loss = "-" if r.final_loss is None else f"{r.final_loss:.4f}"
    # A run in progress shows the cards it holds (the card ledger, `zerodeck hosts`).
    name = f"{r.name} [cards {','.join(map(str, r.card_ids))}]" if r.active and r.card_ids else r.name
    cells: tuple[object, ...] = (MARK if marked else " ", str(r.id), name, printable(r.host or "-"),
                                 outcome_text(run_label(r)),
                                 fmt_duration(run_duration_s(r, now)), f"{peak}/{pred}", sps, loss)
    if not marked:
        return cells
    out: list[object] = []
    for i, c in enumerate(cells):
        t = c.copy() if isinstance(c, Text) else Text(str(c))
        t.stylize(MARKED_STYLE if i < FIXED else "bold")  # the outcome keeps its colour
        out.append(t)
    return tuple(out)
