"""A real PostgreSQL server for the tests: Debian's `postgresql` package, started in a temporary directory.

The store must behave the same on PostgreSQL as on SQLite, so the tests that need a database run on a
real server, not a mock: `initdb` and `pg_ctl` from /usr/lib/postgresql/*/bin run as the unprivileged
`postgres` user (initdb refuses root), with the data directory and the Unix socket in a fresh
temporary directory, no TCP port, and everything removed at the end of the session. Each test gets
its own empty database owned by `zerodeck`, a role that is not a superuser, as the README's set-up has.

When PostgreSQL or psycopg is missing the fixtures skip with the reason (scripts/test.sh installs
the package when it runs as root).
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROLE = "zerodeck"
_SERVER_USER = "postgres"


def find_bindir() -> Path | None:
    """The newest Debian PostgreSQL bin directory holding initdb and pg_ctl, else one on PATH."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                   key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    for folder in reversed(found):
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(os.path.realpath(initdb)).parent
    return None


def unavailable() -> str | None:
    """Why a PostgreSQL server cannot be started here, or None when it can."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'zerodeck[postgres]')"
    if find_bindir() is None:
        return "PostgreSQL is not installed (no initdb/pg_ctl; apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(_SERVER_USER)
        except KeyError:
            return f"no '{_SERVER_USER}' user to run the server as (initdb refuses root)"
    return None


class PgServer:
    """One server for the test session: `new_database()` gives each test its own empty database."""

    def __init__(self, bindir: Path, root: Path | None = None) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="zd-pg-", dir=root))
        self.data_dir = self.root / "data"
        self.socket_dir = self.root / "sock"
        self.log = self.root / "server.log"
        self._names = itertools.count(1)
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            entry = pwd.getpwnam(_SERVER_USER)
            os.chmod(self.root, 0o755)
            # By its full path: a test may empty PATH before it asks for its database.
            self._as_user = [shutil.which("runuser") or "/usr/sbin/runuser", "-u", _SERVER_USER, "--"]
            self._uid, self._gid = entry.pw_uid, entry.pw_gid
        self.socket_dir.mkdir()
        self._own(self.root, self.socket_dir)
        self.running = False

    def _own(self, *paths: Path) -> None:
        if self._as_user:
            for path in paths:
                os.chown(path, self._uid, self._gid)

    def _run(self, argv: Sequence[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        # cwd the server's own directory: runuser keeps ours, which postgres may not be able to read.
        return subprocess.run([*self._as_user, *argv], capture_output=True, text=True, timeout=timeout,
                              cwd=self.root, check=False)

    def init(self) -> None:
        done = self._run([str(self.bindir / "initdb"), "-D", str(self.data_dir), "-U", _SERVER_USER,
                          "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"])
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr.strip() or done.stdout.strip()}")
        self.start()
        self.psql("postgres", f"CREATE ROLE {ROLE} LOGIN")

    def start(self) -> None:
        # No TCP (listen_addresses=''), the socket in our directory, fsync off: test data is disposable.
        options = (f"-c listen_addresses='' -c unix_socket_directories='{self.socket_dir}' -c fsync=off "
                   f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        done = self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log),
                          "-o", options, "-w", "-t", "60", "start"])
        if done.returncode != 0:
            tail = self.log.read_text(errors="replace")[-800:] if self.log.exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {done.stderr.strip() or done.stdout.strip()} {tail}")
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (the data directory stays: `start()` brings the same databases back)."""
        if not self.running:
            return
        self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "-t", "60", "stop"])
        self.running = False

    def psql(self, dbname: str, sql: str) -> str:
        done = self._run([str(self.bindir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                          "-h", str(self.socket_dir), "-U", _SERVER_USER, "-d", dbname, "-c", sql])
        if done.returncode != 0:
            raise RuntimeError(f"psql {dbname}: {done.stderr.strip()}")
        return done.stdout.strip()

    def superuser_url(self, dbname: str = "postgres") -> str:
        return f"postgresql+psycopg://{_SERVER_USER}@/{dbname}?host={self.socket_dir}"

    def url(self, dbname: str, role: str = ROLE) -> str:
        return f"postgresql+psycopg://{role}@/{dbname}?host={self.socket_dir}"

    def new_database(self, prefix: str = "zd") -> str:
        """A fresh empty database owned by the non-superuser role; its URL."""
        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        self.psql("postgres", f"CREATE DATABASE {name} OWNER {ROLE}")
        # PostgreSQL 15 no longer lets everyone create in `public`; the owner of the database must own it.
        self.psql(name, f"ALTER SCHEMA public OWNER TO {ROLE}")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database made by `new_database`, closing whatever still connects to it."""
        name = url.split("@/", 1)[1].split("?", 1)[0]
        with contextlib.suppress(RuntimeError):
            self.psql("postgres", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def cleanup(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def start_server() -> PgServer:
    bindir = find_bindir()
    assert bindir is not None
    server = PgServer(bindir)
    # Also at interpreter exit: a session ended by an error or Ctrl-C still leaves no server running.
    atexit.register(server.cleanup)
    try:
        server.init()
    except BaseException:
        server.cleanup()
        raise
    return server


def load_sqlite_file(db_path: Path, url: str) -> None:
    """Re-create a SQLite store file's tables and rows as they are (an old schema stays old) in the
    empty database at `url`: how the tests get a version 1 store on PostgreSQL."""
    from sqlalchemy import MetaData, create_engine, insert, select, text

    src = create_engine(f"sqlite:///{db_path}")
    dst = create_engine(url)
    meta = MetaData()
    meta.reflect(src)
    for table in meta.tables.values():
        for column in table.columns:
            column.type = column.type.as_generic()  # SQLite's DATETIME is TIMESTAMP there
    try:
        meta.create_all(dst)
        with src.connect() as s, dst.begin() as d:
            for table in meta.sorted_tables:
                rows = [dict(r._mapping) for r in s.execute(select(table))]
                if rows:
                    d.execute(insert(table), rows)
                if "id" in table.c and rows:
                    d.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                   f"(SELECT MAX(id) FROM {table.name}))"))
    finally:
        src.dispose()
        dst.dispose()
