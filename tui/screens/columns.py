"""Choosing which columns a wide table shows, so the ones a person needs fit in 80 columns.

The tables keep their identifying column fixed (DataTable `fixed_columns`) and scroll the rest with
Left / Right; `v` opens this chooser: every other column with a check, Space or Enter shows or hides
the highlighted one, Esc closes and applies. The identifying columns are never offered: a row
without its name cannot be told apart.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import SelectionList, Static
from textual.widgets.selection_list import Selection
from zerodeck.core.i18n import _


class ColumnChooser(ModalScreen[frozenset[str]]):
    """Dismissed with the set of hidden column names."""

    BINDINGS = [Binding("escape,v", "done", _("Done"), show=False)]

    def __init__(self, columns: Sequence[str], hidden: frozenset[str] | set[str]) -> None:
        super().__init__()
        self.columns = [c for c in columns if c]
        self.hidden = frozenset(hidden)

    def compose(self) -> ComposeResult:
        with Vertical(id="columns-dialog"):
            yield Static(Text(_("Columns shown"), style="bold"), id="columns-title")
            yield SelectionList[str](*(Selection(c, c, c not in self.hidden) for c in self.columns),
                                     id="columns-list")
            hint = Text()
            for key, what in (("Space/Enter", _("show/hide")), ("Esc", _("done"))):
                hint.append(key, style="bold")
                hint.append(f" {what}   ")
            yield Static(hint, id="columns-keys")

    def action_done(self) -> None:
        chosen = set(self.query_one("#columns-list", SelectionList).selected)
        self.dismiss(frozenset(c for c in self.columns if c not in chosen))
