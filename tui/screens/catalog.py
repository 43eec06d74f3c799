"""Catalog: every recipe, shipped and the user's, grouped by grid, with the planner's verdict.

Bad recipe files stay visible at the bottom with their `PATH:LINE: field: message` problems.

The key model (the same on every list): every key is a command, and none of them starts anything
alone: `l` (launch) and `a` (queue) ask first, showing the recipe's cards; `q` asks before the UI
closes; the editor, which takes the whole terminal, is Shift+E, a key no lower-case word contains.
Typing goes to the filter only after `/`; there `q` and digits are text, and Enter, Down or Esc
(which clears) go back to the table. The footer shows which of the two the keys are doing.
"""

from __future__ import annotations

import contextlib
import subprocess
import time

from rich.cells import cell_len
from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult, SuspendNotSupported
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static
from zerodeck.core.i18n import _
from zerodeck.store.errors import StoreUnreachable
from zerodeck.tui.messages import CatalogLoaded, LoadFailed, RunQueued
from zerodeck.tui.screens.base import ZerodeckScreen
from zerodeck.tui.view import BadFile, CatalogRow
from zerodeck.tui.widgets.filter import FilterInput
from zerodeck.tui.widgets.footer import KeysFooter
from zerodeck.tui.widgets.modebar import ModeBar
from zerodeck.tui.widgets.table import Table
from zerodeck.tui.widgets.text import verdict_text

# The verdict sits next to the name so it survives a narrow terminal; the data size goes last.
COLUMNS = ("recipe", "plan", "GiB/card", "model", "method", "ZeRO", "cards", "data")


def zero_label(row: CatalogRow) -> str:
    return f"{row.zero_stage}" + ("" if row.offload == "none" else f"+{row.offload[:3]}")


class CatalogScreen(ZerodeckScreen):
    BINDINGS = [
        Binding("slash", "filter", _("Filter"), key_display="/"),
        Binding("p", "plan", _("Plan")),
        Binding("l", "launch", _("Launch…")),
        Binding("a", "queue", _("Queue…")),
        # Shift+E: the editor takes the whole terminal, so not a letter found inside recipe names.
        Binding("E", "edit", _("Edit"), key_display="E"),
        Binding("g,space", "expand", _("Grid±")),
        Binding("v", "columns", _("Columns")),
        Binding("escape", "clear_filter", _("Clear"), key_display="esc"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[CatalogRow] = []
        self.bad: list[BadFile] = []
        self.expanded: set[str] = set()
        self.hidden: frozenset[str] = frozenset()
        self.loaded = False
        self._hinted = 0.0

    def compose(self) -> ComposeResult:
        yield ModeBar()
        with Vertical(id="catalog-body"):
            yield FilterInput(placeholder=_("/ to filter"), id="filter", select_on_focus=False)
            # The recipe name stays put while Left / Right scroll the other columns.
            yield Table(id="catalog", cursor_type="row", zebra_stripes=False, fixed_columns=1)
            yield Static("", id="problems")
        yield KeysFooter(compact=True)  # every command fits at 80 columns

    def on_mount(self) -> None:
        table = self.query_one("#catalog", DataTable)
        for col in COLUMNS:
            table.add_column(col, key=col)
        table.focus()
        self.load()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        boxes = self.query("#filter")
        box = boxes.first(FilterInput) if boxes else None
        if action == "clear_filter":  # shown only when there is a filter to clear
            return bool(box and box.value)
        if action == "filter":  # in the box, `/` is a character
            return not (box and box.has_focus)
        return True

    @work(thread=True, exclusive=True, group="catalog")
    def load(self) -> None:
        # Two passes: the files first (milliseconds), then the planner's columns (it reads the store
        # for its calibration, which takes a while on a long history).
        try:
            services = self.zapp.services
            self.post_message(CatalogLoaded(*services.catalog(with_plan=False), planned=False))
            self.post_message(CatalogLoaded(*services.catalog(), planned=True))
        except StoreUnreachable:
            return  # the app says so once; the catalog keeps the files it read, without plan columns
        except Exception as exc:
            self.post_message(CatalogLoaded([], [], planned=False, error=f"{type(exc).__name__}: {exc}"))

    def on_catalog_loaded(self, msg: CatalogLoaded) -> None:
        self.rows, self.bad = msg.rows, msg.bad
        self.loaded = msg.planned or msg.error is not None
        self.render_table()
        if msg.error:
            self.notify(msg.error, severity="error")

    def on_run_queued(self, msg: RunQueued) -> None:
        self.notify(_("queued {name} (item {item}); `zerodeck runner` runs the queue")
                    .format(name=msg.name, item=msg.item_id), timeout=6)

    # -- table --------------------------------------------------------------------------------
    def shown_rows(self) -> list[tuple[str, tuple[object, ...]]]:
        needle = self.query_one("#filter", FilterInput).value.strip().lower()
        out: list[tuple[str, tuple[object, ...]]] = []
        groups: dict[str | None, list[CatalogRow]] = {}
        for r in self.rows:
            groups.setdefault(r.grid, []).append(r)
        for grid, members in groups.items():
            hits = [r for r in members if not needle or needle in _haystack(r)]
            if not hits:
                continue
            if grid is None:
                out += [(f"r:{r.name}", _cells(r)) for r in hits]
                continue
            open_ = grid in self.expanded or bool(needle)
            mark = "▾" if open_ else "▸"
            out.append((f"g:{grid}", (Text(f"{mark} {grid} ({len(hits)})", style="bold"), _grid_verdict(hits), "",
                                      hits[0].model, hits[0].method, "grid", f"{hits[0].cards} {hits[0].device}",
                                      _data(hits[0]))))
            if open_:
                out += [(f"r:{r.name}", _cells(r, indent=True)) for r in hits]
        return out

    def render_table(self) -> None:
        table = self.query_one("#catalog", DataTable)
        keep = self.current_key()
        # Columns too: their widths then fit what is shown now (a grid opened has longer names).
        table.clear(columns=True)
        shown = self.shown_rows()
        # Explicit widths: a table refilled from a worker kept its header widths at 80 columns and
        # cut every recipe name to "demo-c".
        visible = [i for i, col in enumerate(COLUMNS) if i == 0 or col not in self.hidden]
        for i in visible:
            col = COLUMNS[i]
            width = max([len(col)] + [c.cell_len if isinstance(c, Text) else cell_len(str(c))
                                      for c in (cells[i] for _, cells in shown)])
            table.add_column(col, key=col, width=width)
        for key, cells in shown:
            table.add_row(*(cells[i] for i in visible), key=key)
        if keep is not None:
            with contextlib.suppress(Exception):
                table.move_cursor(row=table.get_row_index(keep))
        problems = self.query_one("#problems", Static)
        if self.bad:
            text = Text(_("{n} bad recipe file(s):").format(n=len(self.bad)) + "\n", style="bold red")
            for b in self.bad:
                for p in b.problems:
                    text.append(f"  {p}\n")
            problems.update(text)
            problems.display = True
        else:
            problems.display = False

    def current_key(self) -> str | None:
        table = self.query_one("#catalog", DataTable)
        if table.row_count == 0:
            return None
        try:
            return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        except Exception:
            return None

    def current_recipe(self) -> str | None:
        key = self.current_key()
        if key is None:
            return None
        if key.startswith("r:"):
            return key[2:]
        self.notify(_("a grid: expand it (g) and pick one recipe"), severity="warning")
        return None

    # -- filter -------------------------------------------------------------------------------
    @on(FilterInput.Changed, "#filter")
    def _filter_changed(self) -> None:
        if self.rows:
            self.render_table()
        self.refresh_bindings()

    @on(FilterInput.Left, "#filter")
    def _filter_left(self) -> None:
        self.query_one("#catalog", DataTable).focus()
        self.refresh_bindings()

    @on(DataTable.RowSelected, "#catalog")
    def _row_selected(self) -> None:
        self.action_plan()

    def on_key(self, event: events.Key) -> None:
        # A letter that is no command here does nothing; say once in a while how to filter, for a
        # person who started typing a name (the keys before it may have opened a question: that
        # question swallows the rest of the word).
        if (self.focused is self.query_one("#catalog", DataTable) and event.is_printable
                and event.character and not event.character.isdigit()
                and event.key not in self.active_bindings and time.monotonic() - self._hinted > 5):
            self._hinted = time.monotonic()
            self.notify(_("keys are commands here: press / to type a filter"), timeout=4)

    def action_filter(self) -> None:
        self.query_one("#filter", FilterInput).focus()

    def action_clear_filter(self) -> None:
        self.query_one("#filter", FilterInput).value = ""
        self.query_one("#catalog", DataTable).focus()

    # -- actions ------------------------------------------------------------------------------
    def action_expand(self) -> None:
        key = self.current_key()
        if key is None:
            return
        grid = key[2:] if key.startswith("g:") else next((r.grid for r in self.rows if f"r:{r.name}" == key), None)
        if grid is None:
            return
        self.expanded ^= {grid}
        self.render_table()
        table = self.query_one("#catalog", DataTable)
        table.move_cursor(row=table.get_row_index(f"g:{grid}"))

    def action_plan(self) -> None:
        key = self.current_key()
        if key is not None and key.startswith("g:"):
            self.action_expand()
            return
        name = self.current_recipe()
        if name:
            from zerodeck.tui.screens.plan import PlanScreen

            self.app.push_screen(PlanScreen(name))

    def action_launch(self) -> None:
        name = self.current_recipe()
        if name:
            self.zapp.ask_launch(name)  # the dialog is up before the next key is read

    def action_queue(self) -> None:
        key = self.current_key()
        if key is not None and key.startswith("g:"):
            self._ask_queue_grid(key[2:])
            return
        name = self.current_recipe()
        if not name:
            return
        from zerodeck.tui.screens.confirm import launch_screen

        def answered(yes: bool | None) -> None:
            if yes:
                self._queue(name)

        self.app.push_screen(launch_screen(self.zapp.services, name, queue=True), answered)

    def action_columns(self) -> None:
        from zerodeck.tui.screens.columns import ColumnChooser

        def chosen(hidden: frozenset[str] | None) -> None:
            if hidden is not None and hidden != self.hidden:
                self.hidden = hidden
                self.render_table()

        self.app.push_screen(ColumnChooser(COLUMNS[1:], self.hidden), chosen)

    def _ask_queue_grid(self, grid: str) -> None:
        """A whole grid goes into the queue at once (after asking); the runner packs its members."""
        from zerodeck.tui.screens.confirm import ConfirmScreen

        names = [r.name for r in self.rows if r.grid == grid]

        def answered(yes: bool | None) -> None:
            if yes:
                self._queue_all(grid, names)

        self.app.push_screen(ConfirmScreen(f"queue the {len(names)} recipes of grid {grid} for the runner?",
                                           verb="queue"), answered)

    @work(thread=True, group="queue")
    def _queue_all(self, grid: str, names: list[str]) -> None:
        try:
            ids = [self.zapp.services.enqueue(n) for n in names]
            self.post_message(RunQueued(f"grid {grid} ({len(ids)} recipes)", ids[0]))
        except Exception as exc:
            self.post_message(LoadFailed(f"queue grid {grid}: {exc}"))

    @work(thread=True, group="queue")
    def _queue(self, name: str) -> None:
        try:
            self.post_message(RunQueued(name, self.zapp.services.enqueue(name)))
        except Exception as exc:
            self.post_message(LoadFailed(_("queue {name}: {error}").format(name=name, error=exc)))

    def action_edit(self) -> None:
        key = self.current_key()
        if key is None:
            return
        path = next((r.path for r in self.rows if key in (f"r:{r.name}", f"g:{r.grid}")), None)
        if path is None:
            return
        services = self.zapp.services
        try:
            with self.app.suspend():
                subprocess.run(services.edit_command(path), check=False)
        except SuspendNotSupported:  # no terminal to hand over (headless): the editor needs none
            subprocess.run(services.edit_command(path), check=False, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        problems = services.validate(path)
        if problems:
            self.notify("\n".join(problems[:5]), title=_("recipe has problems"), severity="error", timeout=10)
        else:
            self.notify(_("{path}: valid").format(path=path))
        self.load()


def _haystack(r: CatalogRow) -> str:
    return " ".join(str(x) for x in (r.name, r.model, r.method, f"z{r.zero_stage}", r.offload, r.device,
                                     r.grid or "", r.verdict or "")).lower()


def _data(r: CatalogRow) -> str:
    n = r.data_samples
    if n is None:
        return "-"
    return f"{n / 1000:.0f}k" if n >= 10_000 else str(n)


def _cells(r: CatalogRow, indent: bool = False) -> tuple[object, ...]:
    gib = "-" if r.per_card_gib is None else _gib(r.per_card_gib)
    if r.capacity_gib and r.per_card_gib is not None:
        gib = f"{_gib(r.per_card_gib)}/{r.capacity_gib:.0f}"
    verdict = verdict_text(r.verdict) if r.plan_error is None else Text("error", style="red")
    return (("  " + r.name) if indent else r.name, verdict, gib, r.model, r.method, zero_label(r),
            f"{r.cards} {r.device}", _data(r))


def _gib(v: float) -> str:
    return f"{v:.2f}" if v < 1 else f"{v:.1f}"


def _grid_verdict(rows: list[CatalogRow]) -> Text:
    """How many members fit, coloured by the best of them (a grid is there to find one that fits)."""
    verdicts = [r.verdict for r in rows]
    if all(v is None for v in verdicts):
        return Text("-", style="dim")
    fit = sum(v in ("fits", "tight") for v in verdicts)
    best = next((v for v in ("fits", "tight", "oom") if v in verdicts), None)
    t = verdict_text(best)
    t.plain = _("{fit}/{n} fit").format(fit=fit, n=len(rows))
    return t
