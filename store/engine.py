"""The one engine factory: every process (CLI, supervisor, TUI worker) opens the store here.

SQLite in WAL mode with a busy timeout, because a supervisor writes samples while the TUI and the
CLI read; any SQLAlchemy URL through `ZERODECK_DB`. Opening checks the schema version first: a
database from a newer zerodeck is refused untouched, an older one is migrated after a backup copy.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, inspect, text
from sqlmodel import Session, SQLModel, create_engine
from zerodeck.store import models
from zerodeck.store.errors import StoreError
from zerodeck.store.location import data_home
from zerodeck.store.migrations import MIGRATIONS

BUSY_TIMEOUT_MS = 15_000


def database_url() -> str:
    url = os.environ.get("ZERODECK_DB")
    if url:
        return url
    home = data_home()
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / 'zerodeck.db'}"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


_ENGINES: dict[str, Engine] = {}


def get_engine(url: str | None = None) -> Engine:
    url = url or database_url()
    if url in _ENGINES:
        return _ENGINES[url]
    is_sqlite = url.startswith("sqlite")
    kwargs: dict[str, Any] = {}
    if is_sqlite:
        kwargs["connect_args"] = {"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
    engine = create_engine(url, **kwargs)
    if is_sqlite:
        event.listen(engine, "connect", _sqlite_pragmas)
    _prepare(engine, url)
    _ENGINES[url] = engine
    return engine


def stored_version(engine: Engine) -> int | None:
    """The schema version recorded in the database, or None for an empty database."""
    names = inspect(engine).get_table_names()
    if "meta" not in names:
        return 0 if names else None
    with engine.connect() as conn:
        row = conn.execute(text("SELECT value FROM meta WHERE key = 'schema_version'")).first()
    return int(row[0]) if row else 0


def _prepare(engine: Engine, url: str) -> None:
    version = stored_version(engine)
    if version is not None and version > models.SCHEMA_VERSION:
        raise StoreError(
            f"{_where(url)}: database schema version {version} is newer than this zerodeck "
            f"understands ({models.SCHEMA_VERSION}); upgrade zerodeck (the file was not changed)"
        )
    if version is not None and version < models.SCHEMA_VERSION:
        _backup(url, version)
        migrate(engine, version, MIGRATIONS)
    SQLModel.metadata.create_all(engine)
    _set_version(engine, models.SCHEMA_VERSION)


def migrate(engine: Engine, version: int, steps: dict[int, Callable[[Any], None]]) -> None:
    """Run each step from `version + 1` up to SCHEMA_VERSION, each in its own transaction."""
    for target in range(version + 1, models.SCHEMA_VERSION + 1):
        step = steps.get(target)
        with engine.begin() as conn:
            if step is not None:
                step(conn)
            conn.execute(text("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)"))
            conn.execute(text("DELETE FROM meta WHERE key = 'schema_version'"))
            conn.execute(text("INSERT INTO meta (key, value) VALUES ('schema_version', :v)"), {"v": str(target)})


def _set_version(engine: Engine, version: int) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM meta WHERE key = 'schema_version'"))
        conn.execute(text("INSERT INTO meta (key, value) VALUES ('schema_version', :v)"), {"v": str(version)})


def _where(url: str) -> str:
    return url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url.split("@")[-1]


def _backup(url: str, version: int) -> None:
    if not url.startswith("sqlite:///"):
        return
    path = Path(url.removeprefix("sqlite:///"))
    if path.is_file():
        shutil.copy2(path, path.with_name(f"{path.name}.v{version}.bak"))


def open_store(url: str | None = None) -> Session:
    """A session on the store; callers use it as a context manager."""
    return Session(get_engine(url), expire_on_commit=False)


def reset_engines() -> None:
    """Forget cached engines (tests switch ZERODECK_HOME between cases)."""
    for engine in _ENGINES.values():
        engine.dispose()
    _ENGINES.clear()
