"""The store's own failure modes: opening writes nothing, read-only and full disks still read, a damaged
file is named in one line and never takes new data (issue 11)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, text
from zerodeck.store.api import Store
from zerodeck.store.engine import reset_engines
from zerodeck.store.errors import StoreDamaged, StoreReadOnly
from zerodeck.store.models import SCHEMA_VERSION

pytestmark = pytest.mark.sqlite_only  # read-only files, full disks, damaged files: SQLite's own failures

RECIPE = "demo-cpu-zero0"
ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "store"
WRITE_VERBS = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "ALTER", "DROP")


@pytest.fixture(autouse=True)
def fresh_cli_store() -> Iterator[None]:
    from zerodeck.core.cli.context import forget_store

    forget_store()
    yield
    forget_store()
    reset_engines()


def _seed(db: Path, runs: int = 2, reason: str = "done") -> list[int]:
    """A store with finished runs, closed so its -wal is checkpointed away as after any command."""
    store = Store.open(f"sqlite:///{db}")
    store.save_snapshot(hash="h1", name="r", toml="name = 'r'\n", source_path=None)
    ids = []
    for i in range(runs):
        run_id = store.add_run(name=f"r{i}", recipe_hash="h1", backend="builtin")
        store.finish_run(run_id, "succeeded", reason)
        ids.append(run_id)
    reset_engines()
    return ids


def _state(db: Path) -> tuple[bytes, int]:
    return db.read_bytes(), db.stat().st_mtime_ns


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and "internal error" not in err and "sqlalche.me" not in err
    return lines[0]


@contextlib.contextmanager
def _statements() -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


# -- opening writes nothing -----------------------------------------------------------------------


def test_opening_an_up_to_date_store_writes_nothing(cli, zd_home: Path) -> None:
    db = zd_home / "zerodeck.db"
    zd_home.mkdir(parents=True)
    ids = _seed(db)
    before = _state(db)
    with _statements() as seen:
        for argv in (("runs", "--json"), ("show", str(ids[0]), "--json"), ("queue", "--json"),
                     ("compare", *map(str, ids), "--format", "csv")):
            code, _out, err = cli(*argv)
            assert code == 0, (argv, err)
        reset_engines()
    writes = [s for s in seen if s.lstrip().upper().startswith(WRITE_VERBS)]
    assert seen and not writes
    assert _state(db) == before
    assert not (zd_home / "zerodeck.db-wal").exists() or (zd_home / "zerodeck.db-wal").stat().st_size == 0


def test_a_new_store_is_still_created_and_an_old_one_migrated(zd_home: Path) -> None:
    store = Store.from_environment()
    assert store.count_runs() == 0
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT value FROM meta WHERE key = 'schema_version'")).scalar() == str(SCHEMA_VERSION)


# -- read-only stores -----------------------------------------------------------------------------


def test_sqlite_read_only_mode_reads_and_refuses_writes(cli, zd_home: Path, monkeypatch) -> None:
    db = zd_home / "zerodeck.db"
    zd_home.mkdir(parents=True)
    ids = _seed(db)
    before = _state(db)
    monkeypatch.setenv("ZERODECK_DB", f"sqlite:///file:{db}?mode=ro&uri=true")
    code, out, err = cli("runs", "--json")
    assert code == 0, err
    assert str(ids[0]) in out
    code, _out, err = cli("queue", "add", RECIPE)
    assert code == 1
    assert _one_line(err) == f"zerodeck: {db}: cannot write: the store is read-only; read commands still work"
    assert _state(db) == before


def test_store_open_readonly(zd_home: Path) -> None:
    db = zd_home / "zerodeck.db"
    zd_home.mkdir(parents=True)
    ids = _seed(db)
    store = Store.open(f"sqlite:///{db}", readonly=True)
    assert [r.id for r in store.runs()] == sorted(ids, reverse=True) or {r.id for r in store.runs()} == set(ids)
    with pytest.raises(StoreReadOnly, match=r"read-only \(opened read-only\)"):
        store.request_stop(ids[0])


NOBODY = 65534


def _unprivileged(cli, *argv: str) -> tuple[int, str, str]:
    """Run the CLI where file permissions bind: as is for a user, in a forked child as `nobody` for root.

    The child imports nothing new (the parent ran the same commands first), because the interpreter
    may live where `nobody` cannot read.
    """
    if os.geteuid() != 0:
        return cli(*argv)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        code = _in_child_as_nobody(out.fileno(), err.fileno(), argv)
        out.seek(0)
        err.seek(0)
        return code, out.read().decode(), err.read().decode()


def _in_child_as_nobody(out: int, err: int, argv: tuple[str, ...]) -> int:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status and files
        code = 99
        try:
            # pytest captures through sys.stdout objects, not file descriptors
            sys.stdout = open(out, "w", closefd=False)  # noqa: SIM115
            sys.stderr = open(err, "w", closefd=False)  # noqa: SIM115
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            from zerodeck.core.cli import main
            from zerodeck.core.cli.context import forget_store

            reset_engines()
            forget_store()
            code = main(list(argv))
        except BaseException:  # noqa: BLE001 - anything unexpected shows in the test's stderr
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _perm_recipe(home: Path) -> str:
    return str(home.parent / "catalog" / f"{RECIPE}.toml")


@pytest.fixture
def shared_home(cli, monkeypatch) -> Iterator[Path]:
    """A ZERODECK_HOME that `nobody` can reach (pytest's tmp_path is private to root)."""
    base = Path(tempfile.mkdtemp(prefix="zd-perm-"))
    base.chmod(0o755)
    # The recipe beside the store, not in the checkout: a checkout may sit in a folder `nobody` cannot
    # enter (a fresh clone under `mktemp -d` is 0700).
    shipped = ROOT / "recipes"
    (base / "catalog").mkdir()
    shutil.copy(shipped / f"{RECIPE}.toml", base / "catalog")
    shutil.copytree(shipped / "data", base / "catalog" / "data")
    for path in (base / "catalog", *(base / "catalog").rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)
    monkeypatch.setenv("ZERODECK_HOME", str(base / "warm"))
    for argv in (("runs", "--json"), ("queue", "add", _perm_recipe(base / "zdhome")), ("queue",)):
        cli(*argv)  # load every module the child will need
    reset_engines()
    home = base / "zdhome"
    home.mkdir()
    monkeypatch.setenv("ZERODECK_HOME", str(home))
    try:
        yield home
    finally:
        reset_engines()
        for path in (home, *home.iterdir()):
            path.chmod(0o755)
        shutil.rmtree(base)


@pytest.mark.parametrize(("case", "reason"), [("file", "the file is read-only"),
                                              ("directory", "its directory is read-only")])
def test_read_only_file_or_directory(cli, shared_home: Path, case: str, reason: str) -> None:
    db = shared_home / "zerodeck.db"
    ids = _seed(db)
    owner = NOBODY if os.geteuid() == 0 else os.geteuid()
    if case == "file":
        os.chown(shared_home, owner, -1)
        db.chmod(0o444)
    else:  # the -shm and -wal files cannot be made: only an immutable open reads it
        os.chown(db, owner, -1)
        shared_home.chmod(0o555)
    before = _state(db)
    code, out, err = _unprivileged(cli, "runs", "--json")
    assert code == 0, err
    assert str(ids[0]) in out
    code, _out, err = _unprivileged(cli, "queue", "add", _perm_recipe(shared_home))
    assert code == 1, err
    assert _one_line(err) == f"zerodeck: {db}: cannot write: the store is read-only ({reason}); " \
                             "read commands still work"
    assert _state(db) == before


# -- limited file systems (tmpfs: root only) ------------------------------------------------------


def _fill(folder: Path) -> None:
    # Unbuffered: closing a buffered file would flush its tail into the full disk and raise there.
    with open(folder / "filler", "wb", buffering=0) as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 65536)
            f.flush()


def test_full_disk_reads_work_and_writes_say_no_space(cli, tmpfs: Path, monkeypatch) -> None:
    monkeypatch.setenv("ZERODECK_HOME", str(tmpfs))
    db = tmpfs / "zerodeck.db"
    ids = _seed(db)
    _fill(tmpfs)
    before = _state(db)
    code, out, err = cli("runs", "--json")
    assert code == 0, err
    assert str(ids[-1]) in out
    code, _out, err = cli("queue", "add", RECIPE)
    assert code == 1
    assert _one_line(err) == (f"zerodeck: {db}: cannot write: no space left on device; "
                              "free some space there (read commands still work)")
    assert _state(db) == before


def test_full_disk_while_the_store_is_open_says_no_space(cli, tmpfs: Path, monkeypatch) -> None:
    """A live reader keeps the -shm file, so SQLite itself reaches the full disk on the write."""
    monkeypatch.setenv("ZERODECK_HOME", str(tmpfs))
    db = tmpfs / "zerodeck.db"
    _seed(db)
    keep = sqlite3.connect(db)
    keep.execute("SELECT COUNT(*) FROM run").fetchone()
    try:
        _fill(tmpfs)
        store = Store.open(f"sqlite:///{db}")
        with pytest.raises(StoreReadOnly, match="no space left on device"):
            for i in range(200):  # a page or two of WAL may still fit
                store.save_snapshot(hash=f"x{i}", name="x", toml="x" * 4000, source_path=None)
    finally:
        keep.close()


def test_read_only_file_system_reads_work_and_writes_say_why(cli, tmpfs: Path, monkeypatch) -> None:
    monkeypatch.setenv("ZERODECK_HOME", str(tmpfs))
    db = tmpfs / "zerodeck.db"
    ids = _seed(db)
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    code, out, err = cli("runs", "--json")
    assert code == 0, err
    assert str(ids[0]) in out
    assert cli("show", str(ids[0]))[0] == 0
    code, _out, err = cli("queue", "add", RECIPE)
    assert code == 1
    assert _one_line(err) == (f"zerodeck: {db}: cannot write: the store is read-only (read-only file system); "
                              "read commands still work")


def test_an_old_store_on_a_full_disk_is_left_alone(cli, tmpfs: Path, monkeypatch) -> None:
    monkeypatch.setenv("ZERODECK_HOME", str(tmpfs))
    db = tmpfs / "zerodeck.db"
    shutil.copy(FIXTURES / "zerodeck-v1.db", db)
    _fill(tmpfs)
    before = _state(db)
    code, _out, err = cli("runs", "--json")
    assert code == 1
    assert _one_line(err) == (f"zerodeck: {db}: cannot write: no space left on device; it needs an upgrade of "
                              f"its schema from version 1 to {SCHEMA_VERSION} first (the file was not changed)")
    assert _state(db) == before
    assert not (tmpfs / "zerodeck.db.v1.bak").exists()


# -- damaged files --------------------------------------------------------------------------------


def test_a_file_that_is_not_a_database_is_named_in_one_line(cli, zd_home: Path) -> None:
    db = zd_home / "zerodeck.db"
    zd_home.mkdir(parents=True)
    db.write_bytes(b"this is not sqlite at all\n" * 400)
    before = _state(db)
    code, _out, err = cli("runs", "--json")
    assert code == 1
    assert _one_line(err) == (
        f"zerodeck: {db}: the database file is damaged (file is not a database); recover it with: "
        f'sqlite3 {db} ".recover" | sqlite3 recovered.db (the file was not changed)'
    )
    assert _state(db) == before
    assert sorted(p.name for p in zd_home.iterdir()) == ["zerodeck.db"]


def test_damage_advice_names_the_migration_backup(cli, zd_home: Path) -> None:
    db = zd_home / "zerodeck.db"
    zd_home.mkdir(parents=True)
    _seed(db)
    (zd_home / "zerodeck.db.v1.bak").write_bytes(db.read_bytes())
    with open(db, "r+b") as f:
        f.write(b"garbage garbage!")  # the 16-byte magic header
    code, _out, err = cli("queue", "--json")
    assert code == 1
    assert "damaged (file is not a database); restore the backup zerodeck.db.v1.bak or run: sqlite3" in _one_line(err)


def _damage_a_run_page(db: Path) -> None:
    """Zero the header of one leaf page of the run table in the middle of the file."""
    con = sqlite3.connect(db)
    pages = [p for (p,) in con.execute("SELECT pageno FROM dbstat WHERE name = 'run' AND pagetype = 'leaf'")]
    size = con.execute("PRAGMA page_size").fetchone()[0]
    con.close()
    assert len(pages) > 3
    with open(db, "r+b") as f:
        f.seek((pages[len(pages) // 2] - 1) * size)
        f.write(b"\xff" * 12)


# quick_check either lists the damage or stops at the first page it cannot read
DAMAGE_FOUND = r"\((quick_check: .+|database disk image is malformed)\)"


def test_a_partly_damaged_store_takes_no_new_runs(cli, zd_home: Path) -> None:
    db = zd_home / "zerodeck.db"
    zd_home.mkdir(parents=True)
    _seed(db, runs=120, reason="x" * 300)
    _damage_a_run_page(db)
    before = _state(db)
    store = Store.from_environment()
    with pytest.raises(StoreDamaged, match=DAMAGE_FOUND):
        store.add_run(name="new", recipe_hash="h1", backend="builtin")
    code, _out, err = cli("queue", "add", RECIPE)
    assert code == 1
    line = _one_line(err)
    assert re.match(f"zerodeck: {re.escape(str(db))}: the database file is damaged {DAMAGE_FOUND}", line)
    assert line.endswith(f'sqlite3 {db} ".recover" | sqlite3 recovered.db (the file was not changed)')
    reset_engines()
    assert _state(db) == before


def test_an_unrecognised_database_error_is_one_line_naming_the_store(cli, zd_home: Path, monkeypatch) -> None:
    import zerodeck.core.cli.queue_cmd as queue_cmd

    def broken(_args) -> int:  # type: ignore[no-untyped-def]
        with Store.from_environment().engine.connect() as conn:
            conn.execute(text("SELECT no_such_column FROM run"))
        return 0

    monkeypatch.setattr(queue_cmd, "cmd_list", broken)
    code, _out, err = cli("queue")
    assert code == 1
    assert _one_line(err) == f"zerodeck: {zd_home / 'zerodeck.db'}: database error: no such column: no_such_column"
