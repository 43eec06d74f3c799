from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text
from zerodeck.store import engine as eng
from zerodeck.store import models, queries
from zerodeck.store.engine import StoreError, get_engine, open_store, reset_engines


def _db(home: Path) -> Path:
    return home / "zerodeck.db"


def _add_run(session, name: str = "r") -> models.Run:
    queries.save_snapshot(session, hash="h1", name=name, toml="name = 'r'\n", source_path=None)
    return queries.add_run(session, models.Run(name=name, recipe_hash="h1", backend="builtin"))


def test_sqlite_is_wal_with_busy_timeout(zd_home: Path) -> None:
    with open_store() as s:
        _add_run(s)
        mode = s.connection().exec_driver_sql("PRAGMA journal_mode").scalar()
        timeout = s.connection().exec_driver_sql("PRAGMA busy_timeout").scalar()
    assert mode == "wal" and timeout == eng.BUSY_TIMEOUT_MS
    assert _db(zd_home).is_file()


def test_zerodeck_db_url_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zd_home: Path) -> None:
    other = tmp_path / "elsewhere.sqlite"
    monkeypatch.setenv("ZERODECK_DB", f"sqlite:///{other}")
    with open_store() as s:
        _add_run(s)
    assert other.is_file() and not _db(zd_home).exists()


def _set_stored_version(home: Path, version: int) -> None:
    reset_engines()
    con = sqlite3.connect(_db(home))
    con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
    con.commit()
    con.close()


def test_newer_schema_is_refused_untouched(zd_home: Path) -> None:
    with open_store() as s:
        _add_run(s)
    _set_stored_version(zd_home, 99)
    before = _db(zd_home).read_bytes()
    with pytest.raises(StoreError, match="newer"):
        get_engine()
    assert _db(zd_home).read_bytes() == before


def test_migration_from_older_version_keeps_rows(zd_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with open_store() as s:
        run_id = _add_run(s, "keep-me").id
    reset_engines()
    # A later release: version 2 adds a column with a default.
    monkeypatch.setattr(models, "SCHEMA_VERSION", 2)
    steps = {2: lambda conn: conn.execute(text("ALTER TABLE run ADD COLUMN note VARCHAR DEFAULT 'x'"))}
    monkeypatch.setattr(eng, "MIGRATIONS", steps)
    engine = get_engine()
    with engine.connect() as conn:
        row = conn.execute(text("SELECT name, note FROM run WHERE id = :i"), {"i": run_id}).one()
        version = conn.execute(text("SELECT value FROM meta WHERE key='schema_version'")).scalar()
    assert tuple(row) == ("keep-me", "x") and version == "2"
    assert (zd_home / "zerodeck.db.v1.bak").is_file()


def test_queue_claim_is_exclusive(zd_home: Path) -> None:
    with open_store() as s:
        a = queries.enqueue(s, "a.toml")
        b = queries.enqueue(s, "b.toml")
        first = queries.claim_next(s)
        second = queries.claim_next(s)
        assert (first.id, second.id) == (a.id, b.id)
        assert queries.claim_next(s) is None


def test_cli_refuses_newer_database_in_one_line(cli, zd_home: Path) -> None:
    with open_store() as s:
        _add_run(s)
    _set_stored_version(zd_home, 99)
    before = _db(zd_home).read_bytes()
    code, out, err = cli("runs", "--json")
    assert code == 1
    assert "newer than this zerodeck" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert _db(zd_home).read_bytes() == before
