"""Comparing runs: rows from the store, the differing columns, and pivot matrices.

The CLI (`zerodeck compare`) and the TUI's Compare screen call the same functions:
`load_rows(store, Selection(...))` -> list of plain dicts, then `comparison_table(rows)` or
`pivot_table(rows, "model", "zero_stage", "peak_max_gib")` -> Table, rendered by `zerodeck.core.export`.
"""

from zerodeck.core.compare.fields import COLUMNS, Column
from zerodeck.core.compare.rows import Selection, build_row, load_rows, resolve_refs
from zerodeck.core.compare.table import Table, comparison_table, differing, pivot_table

__all__ = [
    "COLUMNS", "Column", "Selection", "Table", "build_row", "comparison_table", "differing", "load_rows",
    "pivot_table", "resolve_refs",
]
