"""Migrations started by several processes at once (issue 14): exactly one migrates, none fails.

Five real processes open the same store at the same moment, on PostgreSQL (the advisory lock) and on
SQLite (BEGIN IMMEDIATE): a fresh database, and a version 1 store (the zerodeck 0.1.0 fixture). Each
counts the schema statements it ran itself."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from zerodeck.store import models

from tests.pg_server import load_sqlite_file

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "store"
ROOT = Path(__file__).resolve().parent.parent

# Waits for the go file, so the five open the store within milliseconds of each other, and counts the
# DDL and version writes its own connection sends.
_CHILD = r"""
import json, os, sys, time
from sqlalchemy import Engine, event
url, go = sys.argv[1], sys.argv[2]
ddl = []
@event.listens_for(Engine, "before_cursor_execute")
def count(conn, cursor, statement, *args):
    head = statement.lstrip().upper()
    if head.startswith(("CREATE TABLE", "ALTER TABLE", "INSERT INTO META")):
        ddl.append(head[:40])
from zerodeck.store.api import Store
from zerodeck.store.engine import stored_version
while not os.path.exists(go):
    time.sleep(0.002)
store = Store.open(url)
print(json.dumps({"ddl": len(ddl), "version": stored_version(store.engine), "runs": store.count_runs()}))
"""


def _open_at_once(url: str, tmp_path: Path, n: int = 5) -> list[dict]:
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", _CHILD, url, str(go)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(n)]
    time.sleep(1.5)  # each has imported SQLAlchemy and is waiting
    go.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def _old_store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        db = tmp_path / "old.db"
        shutil.copy(FIXTURES / "zerodeck-v1.db", db)
        return f"sqlite:///{db}"
    url = request.getfixturevalue("pg_url")
    load_sqlite_file(FIXTURES / "zerodeck-v1.db", url)
    return url


def _fresh_store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    return f"sqlite:///{tmp_path / 'fresh.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
@pytest.mark.parametrize("kind", ["fresh", "version 1"])
def test_five_processes_open_one_store_at_once(backend: str, kind: str, tmp_path: Path,
                                               request: pytest.FixtureRequest) -> None:
    url = (_fresh_store if kind == "fresh" else _old_store)(backend, tmp_path, request)
    results = _open_at_once(url, tmp_path)
    migrated = [r for r in results if r["ddl"]]
    assert len(migrated) == 1, results
    assert all(r["version"] == models.SCHEMA_VERSION for r in results)
    assert {r["runs"] for r in results} == {0 if kind == "fresh" else 4}
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            versions = conn.execute(text("SELECT value FROM meta WHERE key = 'schema_version'")).all()
            if kind == "version 1":  # migration 2 ran once and filled the axes from the snapshots
                model = conn.execute(text("SELECT model FROM run WHERE name = 'qwen2.5-7b-lora-z0-s20k'")).scalar()
                assert model == "Qwen2.5-7B"
    finally:
        engine.dispose()
    assert [v[0] for v in versions] == [str(models.SCHEMA_VERSION)]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_newer_store_is_refused_in_one_line(backend: str, tmp_path: Path, request: pytest.FixtureRequest,
                                              cli, monkeypatch: pytest.MonkeyPatch) -> None:
    url = _fresh_store(backend, tmp_path, request)
    from zerodeck.store.api import Store
    from zerodeck.store.engine import reset_engines

    Store.open(url)
    reset_engines()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE meta SET value = '99' WHERE key = 'schema_version'"))
    engine.dispose()
    monkeypatch.setenv("ZERODECK_DB", url)
    code, out, err = cli("runs", "--json")
    assert code == 1 and out == "" and err.count("\n") == 1
    assert "schema version 99 is newer" in err and "was not changed" in err
