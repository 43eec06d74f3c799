"""The filter box of a list: typing goes here only after `/`, and its keys are in the footer.

Inside it every printable key is text (`q` types q, `72` types 72); Enter or Down go back to the
table keeping the filter, Esc clears it and goes back. Outside it, every key is a command.
"""

from __future__ import annotations

from textual.binding import Binding
from textual.message import Message
from textual.widgets import Input
from zerodeck.core.i18n import _


class FilterInput(Input):
    BINDINGS = [
        Binding("enter", "leave", _("Table"), key_display="⏎"),
        Binding("down", "leave", _("Table"), show=False),
        Binding("escape", "clear", _("Clear filter"), key_display="esc"),
    ]

    class Left(Message):
        """The user is done typing; `cleared`: the filter was emptied on the way out."""

        def __init__(self, box: FilterInput, cleared: bool) -> None:
            super().__init__()
            self.box = box
            self.cleared = cleared

        @property
        def control(self) -> FilterInput:
            return self.box

    def action_leave(self) -> None:
        self.post_message(self.Left(self, cleared=False))

    def action_clear(self) -> None:
        self.value = ""
        self.post_message(self.Left(self, cleared=True))
