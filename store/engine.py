"""The one engine factory: every process (CLI, supervisor, TUI worker) opens the store here.

SQLite in WAL mode with a busy timeout, because a supervisor writes samples while the TUI and the
CLI read; PostgreSQL (`postgresql+psycopg://`, a team's shared store) with UTC sessions, a connect
timeout and pre-ping, so a server that went away is `StoreUnreachable` in one line and one that came
back is used again without a restart; any SQLAlchemy URL through `ZERODECK_DB`. Opening checks the
schema version first: a database from a newer zerodeck is refused untouched, an older one is migrated
(after a backup copy of a SQLite file) under the migration lock.

Opening an up-to-date store writes nothing, so reading works where writing cannot: on a read-only
file, directory or file system and on a full disk. When SQLite cannot even read there (a WAL
database needs its -shm file, which a read-only directory or a full disk cannot hold) the store is
reopened read-only (`mode=ro`, then `immutable=1`), and a later write fails with why. Every SQLite
failure becomes a one-line `StoreError` naming the file (store/errors.py), and before the first
write of a process `PRAGMA quick_check` makes sure a partly damaged file takes no new data.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from sqlalchemy import URL, Connection, Engine, event, inspect, make_url, text
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import NullPool
from sqlmodel import SQLModel, create_engine
from zerodeck.store import models
from zerodeck.store.errors import (
    StoreBusy,
    StoreDamaged,
    StoreError,
    StoreReadOnly,
    damaged_message,
    read_only_message,
    translate,
    translate_server,
    why_read_only,
)
from zerodeck.store.location import data_home
from zerodeck.store.migrations import MIGRATIONS
from zerodeck.store.urls import mask_url, server_name

__all__ = ["get_engine", "mask_url", "server_name", "StoreError", "reset_engines"]

BUSY_TIMEOUT_MS = 15_000
CONNECT_TIMEOUT_S = 5
_WRITE_VERBS = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "ALTER", "DROP")


def database_url() -> str:
    url = os.environ.get("ZERODECK_DB")
    if url:
        return url
    home = data_home()
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / 'zerodeck.db'}"


def sqlite_file(url: str | URL) -> Path | None:
    """The database file a SQLite URL names (plain or `file:` URI form); None for memory or other servers."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database.startswith("file:"):
        database = database.removeprefix("file:").split("?", 1)[0]
        database = "/" + database.removeprefix("//").lstrip("/") if database.startswith("//") else database
        database = unquote(database)
    if database in ("", ":memory:") or parsed.query.get("mode") == "memory":
        return None
    return Path(database).absolute()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any, *, wal: bool = True) -> None:
    cur = dbapi_conn.cursor()
    if wal:
        cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


_ENGINES: dict[tuple[str, bool], Engine] = {}


def get_engine(url: str | None = None, *, readonly: bool = False) -> Engine:
    """The process's engine for `url`; `readonly` opens it with SQLite's own read-only mode."""
    url = url or database_url()
    key = (url, readonly)
    if key not in _ENGINES:
        _ENGINES[key] = _open(url, readonly)
    return _ENGINES[key]


def _open(url: str, readonly: bool) -> Engine:
    try:
        make_url(url)
    except ArgumentError:
        raise StoreError(f"{mask_url(url)}: cannot open the store: not a database URL (sqlite:////PATH or "
                         f"postgresql+psycopg://USER@HOST/DB)") from None
    path = sqlite_file(url)
    if path is not None and readonly:
        return _open_read_only(url, path, reason=None)
    engine = _make(url, _where(url), sqlite=url.startswith("sqlite"))
    try:
        _prepare(engine, url)
    except (StoreDamaged, StoreBusy):
        engine.dispose()
        raise
    except StoreError:
        engine.dispose()
        # Only a store that cannot be written falls back; a transient failure is reported as it is.
        reason = why_read_only(str(path)) if path is not None and path.is_file() else None
        if path is None or reason is None:
            raise
        return _open_read_only(url, path, reason)
    return engine


def _open_read_only(url: str, path: Path, reason: str | None) -> Engine:
    """`mode=ro` reads a WAL database whose -shm file exists or can be made; `immutable=1` reads the
    file alone, which is what is left in a read-only directory or on a full disk."""
    failure: StoreError | None = None
    for option in ({"mode": "ro"}, {"immutable": "1"}):
        ro_url = URL.create("sqlite", database=f"file:{quote(str(path))}", query={**option, "uri": "true"})
        engine = _make(ro_url, str(path), sqlite=True, read_only_reason=reason or "opened read-only")
        try:
            _prepare(engine, url, read_only_reason=reason or "opened read-only")
            return engine
        except (StoreDamaged, StoreBusy):
            engine.dispose()
            raise
        except StoreError as exc:
            engine.dispose()
            failure = exc  # the last way is the most permissive: its failure is the one that tells
    assert failure is not None
    raise failure


def _make(url: str | URL, where: str, *, sqlite: bool, read_only_reason: str | None = None) -> Engine:
    kwargs: dict[str, Any] = {}
    if sqlite:
        kwargs["connect_args"] = {"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
    elif is_postgres(url):
        # UTC sessions: the schema's timestamps are naive UTC on both backends (SQLite stores them as
        # text), so an aware value must never be shifted by the server's own time zone. A dead server
        # is found in seconds, and a pooled connection that died with a restart is replaced before use.
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S, "options": "-c timezone=UTC",
                                  "application_name": "zerodeck"}
        kwargs["pool_pre_ping"] = True
    if read_only_reason is not None:
        # A fresh connection per use: an immutable open caches pages as if the file never changed.
        kwargs["poolclass"] = NullPool
    try:
        engine = create_engine(url, **kwargs)
    except (ArgumentError, ImportError) as exc:
        # ZERODECK_DB is a user's text: a typo or a driver that is not installed is one line naming it.
        why = "not a database URL" if isinstance(exc, ArgumentError) else f"its driver is not installed ({exc})"
        hint = "" if str(url).startswith("sqlite") else (
            "; pip install 'zerodeck[postgres]'" if "psycopg" in str(exc) and "psycopg2" not in str(exc)
            else "; PostgreSQL takes postgresql+psycopg://USER@HOST/DB")
        raise StoreError(f"{mask_url(url)}: cannot open the store: {why}{hint}") from None
    event.listen(engine, "handle_error", partial(_translate, where, read_only_reason))
    if sqlite:
        event.listen(engine, "connect", partial(_sqlite_pragmas, wal=read_only_reason is None))
        if read_only_reason is None and sqlite_file(url) is not None:
            event.listen(engine, "before_cursor_execute", _WriteGate(where))
    return engine


def _translate(where: str, read_only_reason: str | None, context: ExceptionContext) -> None:
    """Raise the one-line StoreError for a failure of the store itself; mark any other database error."""
    original = context.original_exception
    if isinstance(original, StoreError):
        return
    error = translate(original, where, read_only_reason) or translate_server(
        original, where, disconnect=context.is_disconnect)
    if error is not None:
        raise error from original
    if context.sqlalchemy_exception is not None:
        context.sqlalchemy_exception.zerodeck_store = where  # type: ignore[attr-defined]


class _WriteGate:
    """Runs `PRAGMA quick_check` once per process, before its first write.

    Reads never pay for it (50-90 ms at 10,000 runs, see bench/bench_store_check.py) and need no
    protection: a damaged page they touch raises and is reported. A write into a partly damaged file
    could spread the damage, so the first write of each process checks the whole file first.
    """

    def __init__(self, where: str) -> None:
        self.where = where
        self.passed = False

    def __call__(self, _conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        if self.passed or not statement.lstrip()[:8].upper().startswith(_WRITE_VERBS):
            return
        try:
            rows = cursor.connection.execute("PRAGMA quick_check").fetchall()
        except sqlite3.DatabaseError as exc:
            raise (translate(exc, self.where) or StoreDamaged(damaged_message(self.where, str(exc)))) from exc
        problems = [str(row[0]) for row in rows if row[0] != "ok"]
        if problems:
            raise StoreDamaged(damaged_message(self.where, f"quick_check: {problems[0]}"))
        self.passed = True


def stored_version(conn: Engine | Connection) -> int | None:
    """The schema version recorded in the database, or None for an empty database."""
    names = inspect(conn).get_table_names()
    if "meta" not in names:
        return 0 if names else None
    if isinstance(conn, Connection):
        row = conn.execute(text("SELECT value FROM meta WHERE key = 'schema_version'")).first()
    else:
        with conn.connect() as c:
            row = c.execute(text("SELECT value FROM meta WHERE key = 'schema_version'")).first()
    return int(row[0]) if row else 0


def _refuse_newer(version: int | None, url: str) -> None:
    if version is not None and version > models.SCHEMA_VERSION:
        raise StoreError(
            f"{_where(url)}: database schema version {version} is newer than this zerodeck "
            f"understands ({models.SCHEMA_VERSION}); upgrade zerodeck (the "
            f"{'file' if sqlite_file(url) is not None else 'database'} was not changed)"
        )


def _prepare(engine: Engine, url: str, read_only_reason: str | None = None) -> None:
    """Create, migrate or refuse; an up-to-date store is left without a single write.

    The version is read first without any lock (the common case: up to date, nothing to do), then
    read again under the migration lock by whoever has to change something, so of several processes
    opening an old or empty store at once exactly one migrates and the others find it done
    (store/migrations.py says why this lock and not Alembic's)."""
    version = stored_version(engine)
    _refuse_newer(version, url)
    if version == models.SCHEMA_VERSION:
        missing = set(SQLModel.metadata.tables) - set(inspect(engine).get_table_names())
        if not missing or read_only_reason is not None:
            return
    elif read_only_reason is not None:
        need = "a new database" if version is None else f"an upgrade of its schema from version {version}"
        raise StoreReadOnly(
            f"{read_only_message(_where(url), read_only_reason).split(';')[0]}; it needs {need} "
            f"to {models.SCHEMA_VERSION} first (the file was not changed)"
        )
    with _migration_lock(engine) as conn:
        version = stored_version(conn)
        _refuse_newer(version, url)
        if version is not None and version < models.SCHEMA_VERSION:
            _backup(url, version)
            migrate(conn, version, MIGRATIONS)
        SQLModel.metadata.create_all(conn)
        if version != models.SCHEMA_VERSION:
            _set_version(conn, models.SCHEMA_VERSION)


# Any fixed number: every zerodeck process takes the same lock (pg_advisory_xact_lock's key space is
# the database's, so it only has to differ from another application's keys on the same database).
MIGRATION_LOCK_KEY = 0x7A65726F6465636B >> 1  # "zerodeck"


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    """One transaction holding the store's migration lock: PostgreSQL's transaction-scoped advisory
    lock, SQLite's write lock (BEGIN IMMEDIATE). Both are released by the commit or rollback."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.commit()


def migrate(conn: Connection, version: int, steps: dict[int, Callable[[Any], None]]) -> None:
    """Run each step from `version + 1` up to SCHEMA_VERSION on `conn`, in its transaction: a step
    that fails leaves the store as it was before the first."""
    conn.execute(text("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)"))
    for target in range(version + 1, models.SCHEMA_VERSION + 1):
        step = steps.get(target)
        if step is not None:
            step(conn)
        _set_version(conn, target)


def _set_version(conn: Connection, version: int) -> None:
    conn.execute(text("DELETE FROM meta WHERE key = 'schema_version'"))
    conn.execute(text("INSERT INTO meta (key, value) VALUES ('schema_version', :v)"), {"v": str(version)})


def is_postgres(url: str | URL) -> bool:
    try:
        return make_url(url).get_backend_name() == "postgresql"
    except Exception:  # noqa: BLE001 - not a URL at all: not PostgreSQL
        return False


def _where(url: str) -> str:
    """How errors name the store: the SQLite file, or HOST/DB of a server (never the password)."""
    path = sqlite_file(url)
    if path is not None:
        return str(path)
    if url.startswith("sqlite:///"):
        return url.removeprefix("sqlite:///")
    return server_name(url)


def _backup(url: str, version: int) -> None:
    path = sqlite_file(url)
    if path is None or not path.is_file():
        return
    backup = path.with_name(f"{path.name}.v{version}.bak")
    try:
        shutil.copy2(path, backup)
    except OSError as exc:
        with contextlib.suppress(OSError):
            backup.unlink(missing_ok=True)
        reason = why_read_only(str(path)) or exc.strerror or str(exc)
        raise StoreReadOnly(
            f"{path}: cannot back up before upgrading the schema from version {version} ({reason}); "
            f"nothing was changed"
        ) from exc


def reset_engines() -> None:
    """Forget cached engines (tests switch ZERODECK_HOME between cases)."""
    for engine in _ENGINES.values():
        engine.dispose()
    _ENGINES.clear()
