"""PostgreSQL as a store: opening, migrations under the advisory lock, and one-line failures (issue 14).

These run on a real server (tests/pg_server.py) and skip, saying why, where PostgreSQL is missing."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from zerodeck.store import models
from zerodeck.store.api import Store
from zerodeck.store.engine import mask_url, reset_engines, stored_version
from zerodeck.store.errors import StoreError, StoreUnreachable


def test_a_fresh_database_gets_the_schema_as_a_non_superuser(pg_url: str) -> None:
    store = Store.open(pg_url)
    assert store.engine.dialect.name == "postgresql"
    assert stored_version(store.engine) == models.SCHEMA_VERSION
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")).scalar() is False
        assert conn.execute(text("SHOW timezone")).scalar() == "UTC"
    store.save_snapshot(hash="h", name="n", toml="", source_path=None)
    rid = store.add_run(name="n", recipe_hash="h", backend="builtin")
    got = store.run(rid)
    assert got is not None and got.created_at is not None and got.created_at.tzinfo is not None


def test_a_run_added_after_a_chosen_id_gets_a_fresh_one(pg_url: str) -> None:
    store = Store.open(pg_url)
    store.save_snapshot(hash="h", name="n", toml="", source_path=None)
    assert store.add_run_at(7, name="n", recipe_hash="h", backend="builtin") == 7
    assert store.add_run(name="n", recipe_hash="h", backend="builtin") == 8


def test_a_stopped_server_is_one_line_unreachable(pg_server, pg_url: str, cli, monkeypatch) -> None:
    monkeypatch.setenv("ZERODECK_DB", pg_url)
    Store.open(pg_url)
    reset_engines()
    pg_server.stop()
    try:
        with pytest.raises(StoreUnreachable, match=r"^store unreachable: .*/zd_\w+ \(.+\)$"):
            Store.open(pg_url)
        code, out, err = cli("runs", "--json")
        tui = cli()  # the TUI opens a server store before it takes the terminal
    finally:
        pg_server.start()
    assert code == 1 and out == ""
    assert err.startswith("zerodeck: store unreachable: ") and err.count("\n") == 1, err
    assert tui[0] == 1 and tui[2].startswith("zerodeck: store unreachable: ") and tui[2].count("\n") == 1, tui


def test_the_password_is_masked_in_errors(pg_server, pg_url: str) -> None:
    secret = pg_url.replace("zerodeck@", "zerodeck:hunter2@")
    assert "hunter2" not in mask_url(secret) and "zerodeck:***@" in mask_url(secret)
    assert "hunter2" not in mask_url(pg_url + "&password=hunter2")
    wrong = secret.replace("/zd_", "/nosuchdb_zd_")
    with pytest.raises(StoreError) as info:
        Store.open(wrong)
    assert "hunter2" not in str(info.value) and "\n" not in str(info.value)


def test_a_read_only_role_reads_with_the_readmes_grants(pg_server, pg_url: str, cli, monkeypatch) -> None:
    """README, "A team's store": a role with CONNECT, USAGE and SELECT only can list and compare runs
    (opening an up-to-date store writes nothing) and is refused a write in one line."""
    store = Store.open(pg_url)
    store.save_snapshot(hash="h", name="n", toml="", source_path=None)
    rid = store.add_run(name="n", recipe_hash="h", backend="builtin", status="finished", outcome="succeeded")
    dbname = pg_url.split("@/")[1].split("?")[0]
    pg_server.psql("postgres", "DO $$BEGIN CREATE ROLE zerodeck_read LOGIN; EXCEPTION WHEN duplicate_object "
                               "THEN NULL; END$$")
    pg_server.psql(dbname, f"GRANT CONNECT ON DATABASE {dbname} TO zerodeck_read; "
                           "GRANT USAGE ON SCHEMA public TO zerodeck_read; "
                           "GRANT SELECT ON ALL TABLES IN SCHEMA public TO zerodeck_read")
    monkeypatch.setenv("ZERODECK_DB", pg_server.url(dbname, role="zerodeck_read"))
    code, out, err = cli("runs", "--json")
    assert code == 0, err
    assert [r["id"] for r in __import__("json").loads(out)] == [rid]
    code, out, err = cli("compare", "--all", "--json")
    assert code == 0, err
    from sqlalchemy.exc import DBAPIError
    from zerodeck.store.errors import failure_line

    reader = Store.open(pg_server.url(dbname, role="zerodeck_read"))
    with pytest.raises(DBAPIError) as info:
        reader.request_stop(rid)
    line = failure_line(info.value)
    assert line is not None and "permission denied for table run" in line and "\n" not in line


def test_a_run_on_postgresql_records_no_password(pg_server, pg_url: str, cli, monkeypatch, tmp_path) -> None:
    """A real supervised run with the password in ZERODECK_DB: it runs (the supervisor connects with
    the URL of its launch spec), and neither the run record's environment nor `show`, `runs` or the
    launch spec's environment holds the password (the test server trusts its socket, so any works)."""
    import json
    from pathlib import Path

    from tests.launch_helpers import command_recipe

    url = pg_url.replace("zerodeck@", "zerodeck:hunter2@")
    monkeypatch.setenv("ZERODECK_DB", url)
    program = 'import json; print(json.dumps({"zerodeck": "step", "step": 1, "loss": 2.0}), flush=True)'
    code, out, err = cli("run", str(command_recipe(tmp_path, program)), "--json")
    assert code == 0, err
    (run,) = json.loads(out)
    assert run["outcome"] == "succeeded" and "hunter2" not in out + err
    code, out, err = cli("show", str(run["id"]), "--json")
    detail = json.loads(out)
    assert detail["env"]["ZERODECK_DB"] == url.replace("hunter2", "***") and "hunter2" not in out
    assert [p["step"] for p in detail["metrics"]] == [1]
    spec = json.loads((Path(detail["workdir"]) / "launch.json").read_text())
    assert "hunter2" not in json.dumps(spec.get("env", {}))


@pytest.mark.parametrize(("url", "words"), [
    ("garbage", "not a database URL"),
    ("postgresql+psycopg2://u:hunter2@h/db", "its driver is not installed"),
])
def test_a_bad_store_url_is_one_line_without_the_password(cli, monkeypatch, url: str, words: str) -> None:
    monkeypatch.setenv("ZERODECK_DB", url)
    code, out, err = cli("runs", "--json")
    assert code == 1 and out == "" and err.count("\n") == 1 and words in err and "hunter2" not in err, err


def test_without_postgresql_the_tests_say_why(monkeypatch) -> None:
    from tests import pg_server

    monkeypatch.setattr(pg_server, "find_bindir", lambda: None)
    reason = pg_server.unavailable()
    assert reason is not None and "apt-get install postgresql" in reason
