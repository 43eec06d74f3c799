"""Compare: the marked runs (or a whole grid) side by side, from zerodeck.core.compare.

`d` keeps only the columns that differ, `p` cycles the pivots (e.g. model × ZeRO stage with peak
GiB), `g` widens the selection to the grid of the first run, `e` exports in the compare formats.
The run and recipe columns stay fixed while Left / Right scroll the rest; `v` hides or shows columns.
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, OptionList, Static
from zerodeck.core import paths
from zerodeck.core.i18n import _
from zerodeck.tui.messages import CompareLoaded, Exported, LoadFailed
from zerodeck.tui.screens.base import ZerodeckScreen
from zerodeck.tui.widgets.footer import KeysFooter
from zerodeck.tui.widgets.modebar import ModeBar
from zerodeck.tui.widgets.table import Table
from zerodeck.tui.widgets.text import error_line

FORMATS = ("md", "csv", "json", "html", "latex")
PIVOTS: tuple[tuple[str, str, str] | None, ...] = (
    None,
    ("model", "zero_stage", "peak_max_gib"),
    ("model", "zero_stage", "samples_per_s"),
)


class CompareScreen(ZerodeckScreen):
    BINDINGS = [
        Binding("d", "diff", _("Diff only")),
        Binding("p", "pivot", _("Pivot")),
        Binding("g", "grid", _("Whole grid")),
        Binding("e", "export", _("Export…")),
        Binding("v", "columns", _("Columns")),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.diff_only = False
        self.pivot_i = 0
        self.ids: list[int] = []
        self.hidden: frozenset[str] = frozenset()
        self.last: CompareLoaded | None = None

    def compose(self) -> ComposeResult:
        yield ModeBar()
        yield Static("", id="compare-title")
        yield Table(id="compare", cursor_type="row")
        yield KeysFooter()

    def on_mount(self) -> None:
        self.query_one("#compare", DataTable).focus()
        self.reload()

    def on_screen_resume(self) -> None:
        # The same runs as last time: paint what is shown, then refresh (see Runs).
        if list(self.zapp.compare_ids) == self.ids and self.ids:
            self.set_timer(0.3, self.reload)
        else:
            self.reload()

    def reload(self) -> None:
        self.ids = list(self.zapp.compare_ids)
        self.load(self.ids, self.diff_only, PIVOTS[self.pivot_i])

    @work(thread=True, exclusive=True, group="compare")
    def load(self, ids: list[int], diff_only: bool, pivot: tuple[str, str, str] | None) -> None:
        services = self.zapp.services
        try:
            if not ids:
                runs, _ = services.runs(limit=10)
                ids = sorted(r.id for r in runs)
            headers, rows = services.compare(ids, diff_only=diff_only, pivot=pivot)
            self.post_message(CompareLoaded(ids, headers, rows))
        except Exception as exc:
            self.post_message(CompareLoaded(ids, [], [], error=error_line(exc)))

    def on_exported(self, msg: Exported) -> None:
        self.notify(_("exported to {path}").format(path=msg.path), timeout=8)

    def on_compare_loaded(self, msg: CompareLoaded) -> None:
        self.ids = msg.ids
        self.last = msg
        self.render_table(msg)
        title = Text(" " + _("Compare: {n} run(s)").format(n=len(msg.ids)), style="bold")
        mode = [_("diff only") if self.diff_only else _("all columns")]
        pivot = PIVOTS[self.pivot_i]
        if pivot:
            mode.append(f"pivot {pivot[0]} × {pivot[1]}: {pivot[2]}")
        title.append("  " + " · ".join(mode), style="dim")
        if msg.error:
            title.append(f"\n {msg.error}", style="red")
        self.query_one("#compare-title", Static).update(title)

    def render_table(self, msg: CompareLoaded) -> None:
        table = self.query_one("#compare", DataTable)
        table.clear(columns=True)
        headers = [str(h) for h in msg.headers]
        fixed = fixed_count(headers)
        table.fixed_columns = fixed
        shown = [i for i, h in enumerate(headers) if i < fixed or h not in self.hidden]
        for i in shown:
            table.add_column(headers[i])
        for r in msg.rows:
            table.add_row(*[str(r[i]) for i in shown])

    def action_columns(self) -> None:
        from zerodeck.tui.screens.columns import ColumnChooser

        if self.last is None:
            return
        headers = [str(h) for h in self.last.headers]

        def chosen(hidden: frozenset[str] | None) -> None:
            if hidden is not None and self.last is not None:
                # Names of columns not in this table (another pivot) stay hidden for when they return.
                self.hidden = (self.hidden - set(headers)) | hidden
                self.render_table(self.last)

        self.app.push_screen(ColumnChooser(headers[fixed_count(headers):], self.hidden & set(headers)), chosen)

    def action_diff(self) -> None:
        self.diff_only = not self.diff_only
        self.load(self.ids, self.diff_only, PIVOTS[self.pivot_i])

    def action_pivot(self) -> None:
        self.pivot_i = (self.pivot_i + 1) % len(PIVOTS)
        self.load(self.ids, self.diff_only, PIVOTS[self.pivot_i])

    def action_grid(self) -> None:
        self._grid(self.ids)

    @work(thread=True, exclusive=True, group="compare")
    def _grid(self, ids: list[int]) -> None:
        services = self.zapp.services
        grid_ids = services.grid_runs(ids[0]) if ids else []
        if not grid_ids:
            self.post_message(LoadFailed(_("the first run belongs to no grid")))
            return
        self.zapp.compare_ids = grid_ids
        try:
            headers, rows = services.compare(grid_ids, diff_only=self.diff_only, pivot=PIVOTS[self.pivot_i])
            self.post_message(CompareLoaded(grid_ids, headers, rows))
        except Exception as exc:
            self.post_message(CompareLoaded(grid_ids, [], [], error=str(exc)))

    def action_export(self) -> None:
        def chosen(fmt: str | None) -> None:
            if fmt:
                self._export(list(self.ids), fmt)

        self.app.push_screen(ExportDialog(), chosen)

    @work(thread=True, group="export")
    def _export(self, ids: list[int], fmt: str) -> None:
        out = paths.home() / "exports" / f"compare-{'-'.join(map(str, ids[:8]))}.{_ext(fmt)}"
        try:
            path = self.zapp.services.export(ids, fmt, out, diff_only=self.diff_only, pivot=PIVOTS[self.pivot_i])
            self.post_message(Exported(path))
        except Exception as exc:
            self.post_message(LoadFailed(_("export {fmt}: {error}").format(fmt=fmt, error=exc)))


def fixed_count(headers: list[str]) -> int:
    """The identifying columns kept in place: the run and its recipe, else the pivot's row label."""
    n = 0
    while n < len(headers) and headers[n] in ("run", "recipe"):
        n += 1
    return max(1, n) if headers else 0


def _ext(fmt: str) -> str:
    return {"latex": "tex"}.get(fmt, fmt)


class ExportDialog(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "cancel", _("Cancel"))]

    def compose(self) -> ComposeResult:
        with Vertical(id="export-dialog"):
            yield Static(_("Export the comparison as"), id="export-title")
            yield OptionList(*FORMATS, id="export-formats")
            hint = Text()
            for key, what in (("↑↓", _("choose")), ("Enter", _("export")), ("Esc", _("cancel"))):
                hint.append(key, style="bold")
                hint.append(f" {what}  ")
            yield Static(hint, id="export-keys")

    @on(OptionList.OptionSelected)
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(FORMATS[event.option_index])

    def action_cancel(self) -> None:
        self.dismiss(None)

