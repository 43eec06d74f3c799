"""Tables built from comparison rows: the full comparison, its differing columns, and pivots.

A `Table` (title, columns, rows of plain dicts) is what every exporter renders, so a pivot and a
comparison go through the same Markdown/CSV/LaTeX code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from zerodeck.core.compare.fields import COLUMNS, IDENTITY, REPRODUCE, Column, column_for
from zerodeck.core.errors import BadInput
from zerodeck.core.i18n import _


@dataclass
class Table:
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]]
    kind: str = "compare"  # compare | pivot
    notes: list[str] = field(default_factory=list)

    def without(self, keys: Sequence[str]) -> Table:
        cols = [c for c in self.columns if c.key not in keys]
        return Table(self.title, cols, self.rows, self.kind, self.notes)

    def dropping_empty(self) -> Table:
        """Columns with no value in any row left out (people's formats; scripts keep them all)."""
        cols = [c for c in self.columns if c.key in IDENTITY or any(r.get(c.key) is not None for r in self.rows)]
        return Table(self.title, cols, self.rows, self.kind, self.notes)


def _all_keys(rows: Sequence[dict[str, Any]], *, every: bool = False) -> list[Column]:
    known = [c for c in COLUMNS if every or not c.optional or any(c.key in r for r in rows)]
    seen = {c.key for c in COLUMNS}
    extras: dict[str, Any] = {}
    for r in rows:
        for k, v in r.items():
            if k not in seen and (k not in extras or extras[k] is None):
                extras[k] = v
    # Extras (summary numbers) go before the long reproduce columns.
    cut = next(i for i, c in enumerate(known) if c.key == REPRODUCE[0])
    return known[:cut] + [column_for(k, v) for k, v in sorted(extras.items())] + known[cut:]


def differing(columns: Sequence[Column], rows: Sequence[dict[str, Any]]) -> list[Column]:
    """The identity columns plus those whose values are not all equal (absent counts as a value)."""
    out = []
    for c in columns:
        if c.key in IDENTITY:
            out.append(c)
            continue
        values = {_hashable(r.get(c.key)) for r in rows}
        if len(values) > 1:
            out.append(c)
    return out


def _hashable(v: Any) -> Any:
    return repr(v) if isinstance(v, list | dict) else v


def comparison_table(rows: Sequence[dict[str, Any]], *, diff_only: bool = False,
                     columns: Sequence[str] | None = None) -> Table:
    cols = _all_keys(rows)
    if columns:
        by = {c.key: c for c in _all_keys(rows, every=True)}
        unknown = [k for k in columns if k not in by]
        if unknown:
            raise BadInput(_("unknown column: {columns} (one of: {known})").format(columns=", ".join(unknown),
                                                                                  known=", ".join(by)))
        cols = [by[k] for k in columns]
    if diff_only:
        cols = differing(cols, rows)
    n = len(rows)
    title = f"Comparison of {n} run{'s' if n != 1 else ''}"
    return Table(title, cols, list(rows), "compare")


def _order_key(v: Any) -> tuple[int, Any]:
    if v is None:
        return (2, "")
    if isinstance(v, int | float) and not isinstance(v, bool):
        return (0, v)
    return (1, str(v))


def pivot_table(rows: Sequence[dict[str, Any]], row_field: str, col_field: str, value_field: str) -> Table:
    """A matrix: one row per value of `row_field`, one column per value of `col_field`, cells `value_field`.

    A cell with several runs shows the latest (highest run id); a cell with none is empty (None).
    """
    cols_known = {c.key: c for c in _all_keys(rows)}
    for f in (row_field, col_field, value_field):
        if f not in cols_known:
            raise BadInput(_("--pivot/--value: unknown field {field!r} (one of: {known})")
                           .format(field=f, known=", ".join(cols_known)))
    row_vals: list[Any] = []
    col_vals: list[Any] = []
    cells: dict[tuple[Any, Any], tuple[int, Any]] = {}
    for r in rows:
        rv, cv = r.get(row_field), r.get(col_field)
        if rv not in row_vals:
            row_vals.append(rv)
        if cv not in col_vals:
            col_vals.append(cv)
        rid = r.get("id") or 0
        prev = cells.get((rv, cv))
        if prev is None or rid >= prev[0]:
            cells[(rv, cv)] = (rid, r.get(value_field))
    row_vals.sort(key=_order_key)
    col_vals.sort(key=_order_key)
    rc, cc, vc = cols_known[row_field], cols_known[col_field], cols_known[value_field]
    out_cols = [Column(row_field, rc.label, rc.unit, rc.kind)]
    for cv in col_vals:
        label = f"{cc.label} {'-' if cv is None else cv}"
        out_cols.append(Column(f"{col_field}={'' if cv is None else cv}", label, vc.unit, vc.kind))
    out_rows = []
    for rv in row_vals:
        row: dict[str, Any] = {row_field: rv}
        for cv, col in zip(col_vals, out_cols[1:]):
            hit = cells.get((rv, cv))
            row[col.key] = None if hit is None else hit[1]
        out_rows.append(row)
    title = f"{vc.header} by {rc.label} × {cc.label}"
    notes = ["a cell with several runs shows the latest; an empty cell had no run or no value"]
    return Table(title, out_cols, out_rows, "pivot", notes)
