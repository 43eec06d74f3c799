from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--store", choices=("sqlite", "postgresql"), default="sqlite",
                     help="the store every test's environment names: postgresql gives each test a fresh "
                          "database on the session's real server (tests/pg_server.py) as ZERODECK_DB")


@pytest.fixture(autouse=True)
def zd_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Path:
    """Every test gets its own data directory and store (`--store postgresql`: a database of its own)."""
    home = tmp_path / "zdhome"
    monkeypatch.setenv("ZERODECK_HOME", str(home))
    monkeypatch.delenv("ZERODECK_DB", raising=False)
    if request.config.getoption("--store") == "postgresql":
        monkeypatch.setenv("ZERODECK_DB", request.getfixturevalue("pg_url"))
    monkeypatch.delenv("ZERODECK_RECIPES", raising=False)
    # English unless a test asks for Chinese: a developer's LANG=zh_CN.UTF-8 must not change the wording
    # every other test compares.
    monkeypatch.setenv("ZERODECK_LANG", "en")
    from zerodeck.core.cli.context import forget_store
    from zerodeck.store.engine import reset_engines

    forget_store()  # the in-process CLI keeps one Store per process; each test has its own home
    reset_engines()
    forget_store()  # the CLI's Store of the previous test names the previous test's database
    yield home
    forget_store()
    reset_engines()


@pytest.fixture
def zd_bin() -> str:
    """The installed console script, next to this interpreter."""
    exe = Path(sys.executable).with_name("zerodeck")
    return str(exe) if exe.exists() else "zerodeck"


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run the CLI in-process: returns (exit code, stdout, stderr)."""
    from zerodeck.core.cli import main

    def run(*argv: str) -> tuple[int, str, str]:
        try:
            code = main(list(argv))
        except SystemExit as exc:
            code = int(exc.code or 0)
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


os.environ.setdefault("NO_COLOR", "1")


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs (root only): fills fast, and can be remounted read-only even for root."""
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        from zerodeck.core.cli.context import forget_store
        from zerodeck.store.engine import reset_engines

        forget_store()
        reset_engines()
        subprocess.run(["mount", "-o", "remount,rw", str(mnt)], capture_output=True)
        subprocess.run(["umount", "-l", str(mnt)], check=False)


# -- PostgreSQL (issue 14): a real server for the session, a fresh database per test (tests/pg_server.py) --

_PG: dict[str, object] = {}


@pytest.fixture(scope="session")
def pg_server():
    """The session's PostgreSQL server (started on first use, removed at the end); skips, saying why,
    where PostgreSQL or psycopg is missing."""
    from tests.pg_server import start_server, unavailable

    reason = unavailable()
    if reason:
        pytest.skip(f"PostgreSQL tests skipped: {reason}")
    if "failed" in _PG:
        pytest.skip(f"PostgreSQL tests skipped: {_PG['failed']}")
    try:
        server = start_server()
    except Exception as exc:  # noqa: BLE001 - said once, every PG test skips with it
        _PG["failed"] = f"cannot start a PostgreSQL server: {exc}"
        pytest.skip(str(_PG["failed"]))
    try:
        yield server
    finally:
        from zerodeck.store.engine import reset_engines

        reset_engines()  # close our connections before the server goes
        server.cleanup()


@pytest.fixture
def pg_url(pg_server) -> Iterator[str]:
    """A fresh empty database owned by the non-superuser role `zerodeck`, dropped after the test (a
    whole suite run with `--store postgresql` would otherwise keep hundreds of them on disk)."""
    url = pg_server.new_database()
    yield url
    from zerodeck.core.cli.context import forget_store
    from zerodeck.store.engine import reset_engines

    forget_store()
    reset_engines()
    if pg_server.running:
        pg_server.drop_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_url(request: pytest.FixtureRequest, zd_home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A store URL on each backend (PostgreSQL's set as ZERODECK_DB): tests that only need a Store run on both."""
    if request.param == "sqlite":
        from zerodeck.store.engine import database_url

        return database_url()  # the default store under ZERODECK_HOME, exactly as without the fixture
    url = request.getfixturevalue("pg_url")
    monkeypatch.setenv("ZERODECK_DB", url)
    return url
