"""Moving a store: `zerodeck store copy SRC DST` and `zerodeck store info`, from SQLite to PostgreSQL or back.

Both stores are opened as every command opens them (created, or migrated to this zerodeck's schema),
so a copy is always between two stores of the same version and every table of the schema is copied
as it is, ids included: runs, metric points, card peaks, telemetry, snapshots, the queue, the card
ledger, events, host cards, and whatever a later version adds to `models.py`. The whole copy is one
transaction on the destination that also checks each table's row count against the source (read in
one snapshot), so a copy either lands complete or not at all.

PostgreSQL hands out ids from a sequence that knows nothing of ids inserted by hand: after the copy
each sequence is set to the table's largest id, or the next run would collide with a copied one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection, Table, delete, func, insert, select, text
from sqlmodel import SQLModel
from zerodeck.store.api import Store
from zerodeck.store.engine import sqlite_file, stored_version
from zerodeck.store.errors import StoreError
from zerodeck.store.urls import mask_url

_BATCH = 2_000  # rows per INSERT: far below SQLite's parameter bound at our widest table (~60 columns)


class DestinationNotEmpty(StoreError):
    """The destination already holds rows and the copy was not told to replace them."""


@dataclass(frozen=True)
class StoreInfo:
    url: str  # the password masked
    backend: str
    schema_version: int | None
    counts: dict[str, int]

    def as_dict(self) -> dict[str, object]:
        return {"url": self.url, "backend": self.backend, "schema_version": self.schema_version,
                "tables": dict(self.counts)}


def tables() -> list[Table]:
    """Every table of the schema, parents before children (the order inserts must follow); `meta`
    is left out: each store keeps its own schema version."""
    return [t for t in SQLModel.metadata.sorted_tables if t.name != "meta"]


def row_counts(conn: Connection) -> dict[str, int]:
    return {t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one()) for t in tables()}


def store_info(store: Store) -> StoreInfo:
    with store.engine.connect() as conn:
        counts = row_counts(conn)
    return StoreInfo(mask_url(store.url), store.engine.dialect.name, stored_version(store.engine), counts)


@contextmanager
def _snapshot(store: Store) -> Iterator[Connection]:
    """One read transaction on the source, so the tables copied agree with each other while a
    supervisor goes on writing."""
    with store.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN")  # pysqlite starts no transaction for a SELECT by itself
        elif conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        try:
            yield conn
        finally:
            conn.rollback()


def copy_store(src: Store, dst: Store, *, replace: bool = False,
               progress: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """Copy every row of `src` into `dst`; the row counts per table, checked equal on both sides.

    A destination with rows is refused (`DestinationNotEmpty`) unless `replace`, which deletes them in
    the same transaction as the copy."""
    if _same_store(src, dst):
        raise StoreError(f"{mask_url(dst.url)}: the source and the destination are the same store")
    with _snapshot(src) as reader, dst.engine.connect() as writer:
        if writer.dialect.name == "sqlite":
            writer.exec_driver_sql("BEGIN IMMEDIATE")  # no other writer between the check and the copy
        try:
            held = {name: n for name, n in row_counts(writer).items() if n}
            if held and not replace:
                shown = ", ".join(f"{name} {n}" for name, n in held.items())
                raise DestinationNotEmpty(f"{mask_url(dst.url)}: the destination is not empty ({shown}); "
                                          f"give --replace to replace its rows")
            for table in reversed(tables()):
                writer.execute(delete(table))
            for table in tables():
                _copy_table(reader, writer, table, progress)
            _fix_sequences(writer)
            want, got = row_counts(reader), row_counts(writer)
            if want != got:
                diff = ", ".join(f"{t} {want[t]} -> {got.get(t)}" for t in want if want[t] != got.get(t))
                raise StoreError(f"{mask_url(dst.url)}: row counts differ after the copy ({diff}); "
                                 f"nothing was written")
        except BaseException:
            writer.rollback()
            raise
        writer.commit()
    return got


def _copy_table(reader: Connection, writer: Connection, table: Table,
                progress: Callable[[str, int], None] | None) -> None:
    order = list(table.primary_key.columns) or list(table.columns)
    done = 0
    result = reader.execute(select(table).order_by(*order)).mappings()
    while batch := result.fetchmany(_BATCH):
        writer.execute(insert(table), [dict(row) for row in batch])
        done += len(batch)
        if progress is not None:
            progress(table.name, done)


def _fix_sequences(conn: Connection) -> None:
    """Set each table's id sequence to its largest id (PostgreSQL; SQLite takes max(rowid) + 1)."""
    if conn.dialect.name != "postgresql":
        return
    for table in tables():
        id_col = table.c.get("id")
        if id_col is None or not id_col.primary_key or not id_col.autoincrement:
            continue
        # is_called false on an empty table: its next id is then 1, as on a fresh store.
        conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                          f"COALESCE(MAX(id), 1), MAX(id) IS NOT NULL) FROM {table.name}"))


def _same_store(a: Store, b: Store) -> bool:
    fa, fb = sqlite_file(a.url), sqlite_file(b.url)
    if fa is not None or fb is not None:
        return fa is not None and fb is not None and fa.resolve() == fb.resolve()
    return a.engine.url == b.engine.url


__all__ = ["copy_store", "store_info", "row_counts", "tables", "StoreInfo", "DestinationNotEmpty"]
