"""The live view's log tail: always the newest lines of the followed run's log, one row each.

A scrolling `Log` stops following once its scroll position is off the end, which happened whenever
lines arrived while the panel was hidden or not yet laid out (at step 220 it still showed steps 8-11).
This widget has no scroll position: it draws the last lines that fit its height, so it follows to
the end by construction. Step lines of zerodeck's trainer are shown as readable text, and a line too
wide is cut with an ellipsis instead of wrapping. The whole log is in the run record and on disk.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual.widget import Widget
from zerodeck.tui.widgets.text import crop, log_line

KEEP = 500


class LogTail(Widget):
    DEFAULT_CSS = "LogTail { height: 1fr; }"

    def __init__(self, keep: int = KEEP, **kw: Any) -> None:
        super().__init__(**kw)
        self._lines: deque[str] = deque(maxlen=keep)

    @property
    def lines(self) -> list[str]:
        """The lines kept, as the log printed them."""
        return list(self._lines)

    @property
    def line_count(self) -> int:
        return len(self._lines)

    def clear(self) -> None:
        if self._lines:
            self._lines.clear()
            self.refresh()

    def write_lines(self, lines: Iterable[str]) -> None:
        before = len(self._lines)
        self._lines.extend(ln.rstrip("\r\n").rsplit("\r", 1)[-1] for ln in lines)  # tqdm's \r: its last state
        if len(self._lines) != before or before == self._lines.maxlen:
            self.refresh()

    def shown(self, height: int | None = None, width: int | None = None) -> list[str]:
        """What the widget draws: the newest `height` lines, readable and cut to `width`."""
        h = self.size.height if height is None else height
        w = self.size.width if width is None else width
        if h <= 0:
            return []
        newest = list(self._lines)[-h:]
        return [crop(log_line(ln), w) for ln in newest]

    def render(self) -> Text:
        return Text("\n".join(self.shown()), no_wrap=True, overflow="ellipsis")
