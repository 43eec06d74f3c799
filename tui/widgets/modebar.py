"""The top line: the four screens and their number keys, the current one highlighted, and what the
keys do right now: commands (the footer lists them), or text for a filter box after `/`.

It replaces a title bar, so the number keys need no room in the footer at 80 columns.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widget import Widget
from textual.widgets import Input
from zerodeck.core.i18n import N_, _

MODES = (("1", "catalog", N_("Catalog")), ("2", "live", N_("Live")), ("3", "runs", N_("Runs")),
         ("4", "compare", N_("Compare")))


class ModeBar(Widget):
    DEFAULT_CSS = "ModeBar { height: 1; background: $panel; }"

    def __init__(self, title: str = "", **kw: Any) -> None:
        super().__init__(**kw)
        self.title = title

    def on_mount(self) -> None:
        # Redrawn when focus moves in or out of a filter box: the line says which keys mean what.
        self.watch(self.screen, "focused", self._focus_moved, init=False)

    def _focus_moved(self) -> None:
        self.refresh()

    def render(self) -> Text:
        current = getattr(self.app, "current_mode", "")
        t = Text(" zerodeck ", style="bold")
        for key, mode, label in MODES:
            style = "reverse bold" if mode == current else ""
            t.append(" ")
            t.append(f"{key} {_(label)}", style=style)
            t.append(" ")
        if self.title:
            t.append(f"  {self.title}", style="dim")
        if isinstance(self.screen.focused, Input):
            t.append("  " + _("typing: filter") + " ", style="reverse bold")
        return t
