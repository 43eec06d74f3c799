"""The DataTable every screen uses, with its rows redrawn once their columns are measured.

DataTable measures the cells of new rows when it is next idle. A frame drawn between adding rows and
that measurement is cached under the table's update count, which measuring does not change, so the
table went on showing every column at its header's width (recipe names cut to "qwen2.") until the
cursor moved: seen on a loaded machine, where a frame often comes before the table is idle.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from textual.widgets import DataTable


class Table(DataTable[Any]):
    def _update_dimensions(self, new_rows: Iterable[Any]) -> None:
        super()._update_dimensions(new_rows)
        self._clear_caches()
        self.refresh()
