"""`zerodeck store copy` and `store info` (issue 14): a SQLite store of 10,000 runs to PostgreSQL and
back, every table, ids kept, sequences set after the copy (a new run gets a fresh id), row counts
checked; one-line refusals with exit 1 / 2; the password never shown."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import insert
from zerodeck.store.api import Store
from zerodeck.store.copy import tables
from zerodeck.store.models import (
    CardPeak,
    Host,
    HostCard,
    LedgerHold,
    MetricPoint,
    QueueItem,
    RecipeSnapshot,
    Run,
    RunEvent,
    SlurmJob,
    TelemetrySample,
)


def seed(store: Store, n: int) -> None:
    """`n` runs in bulk with rows in every table (the store's per-run writes would time the setup)."""
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    snaps = [{"hash": f"h{k}", "name": f"recipe-{k}", "toml": f'name = "recipe-{k}"\n'} for k in range(8)]
    runs = [{"id": i + 1, "name": f"recipe-{i % 8}", "recipe_hash": f"h{i % 8}", "tags": json.dumps(["t", f"b{i % 3}"]),
             "status": "finished", "outcome": "succeeded" if i % 4 else "oom", "backend": "builtin", "device": "cpu",
             "stop_requested": i % 2 == 0, "created_at": t0 + timedelta(seconds=i), "final_loss": 1.0 + i / n,
             "card_ids": "[0, 1]", "env": json.dumps({"A": str(i)})} for i in range(n)]
    with store.engine.begin() as conn:
        conn.execute(insert(RecipeSnapshot), snaps)
        conn.execute(insert(Run), runs)
        conn.execute(insert(MetricPoint),
                     [{"run_id": 1 + i % n, "step": i, "loss": 2.0 - i / 1000} for i in range(500)])
        conn.execute(insert(CardPeak), [{"run_id": 1 + i, "source": "npu-smi", "card": str(c), "peak_mb": 1000.0 + c}
                                        for i in range(min(n, 300)) for c in range(2)])
        conn.execute(insert(TelemetrySample), [{"run_id": 1, "t": float(k), "source": "cpu", "card": "rank0",
                                                "memory_used_mb": 10.0 * k} for k in range(50)])
        conn.execute(insert(QueueItem),
                     [{"recipe_ref": "a.toml", "recipe_hash": "h1", "state": "done", "run_id": 1},
                      {"recipe_ref": "b.toml", "recipe_hash": None, "state": "pending", "run_id": None}])
        conn.execute(insert(LedgerHold), [{"host": "node1", "kind": "card", "ident": 0, "run_id": 2, "holder_pid": 1}])
        conn.execute(insert(HostCard), [{"host": "node1", "card": 0, "memory_used_mb": 5.0}])
        conn.execute(insert(Host), [{"name": "node1", "last_heartbeat": t0, "runner_pid": 1}])  # issue 14
        conn.execute(insert(RunEvent), [{"run_id": 3, "kind": "stalled", "detail": '{"step": 4}',
                                         "at": t0 + timedelta(hours=1)}])
        conn.execute(insert(SlurmJob), [{"run_id": 4, "job_id": "17", "state": "COMPLETED", "nodes": 2,
                                         "cards_per_node": 8, "submitted_at": t0, "queue_wait_s": 3.5}])


def _info(cli, url: str) -> dict:
    code, out, err = cli("store", "info", url, "--json")
    assert code == 0, err
    return json.loads(out)


def test_ten_thousand_runs_to_postgresql_and_back(cli, pg_url: str, tmp_path: Path) -> None:
    src_url = f"sqlite:///{tmp_path / 'src.db'}"
    src = Store.open(src_url)
    seed(src, 10_000)
    want = _info(cli, src_url)["tables"]
    assert set(want) == {t.name for t in tables()} and all(want.values()), want  # every table has rows

    code, out, err = cli("store", "copy", src_url, pg_url, "--json")
    assert code == 0, err
    assert json.loads(out)["tables"] == want
    info = _info(cli, pg_url)
    assert info["tables"] == want and info["backend"] == "postgresql" and info["schema_version"] == _info(
        cli, src_url)["schema_version"]

    back_url = f"sqlite:///{tmp_path / 'back.db'}"
    code, out, err = cli("store", "copy", pg_url, back_url)
    assert code == 0, err
    assert "row counts match" in out
    assert _info(cli, back_url)["tables"] == want

    pg, back = Store.open(pg_url), Store.open(back_url)
    assert [r.as_dict() for r in pg.runs(ids=[1, 2, 5000, 10_000])] == \
        [r.as_dict() for r in src.runs(ids=[1, 2, 5000, 10_000])] == \
        [r.as_dict() for r in back.runs(ids=[1, 2, 5000, 10_000])]
    assert pg.events(3)[0].kind == "stalled" and pg.metrics(1)[0].loss == 2.0
    # The sequence trap: without setval PostgreSQL would hand out id 1 again.
    for store in (pg, back):
        assert store.add_run(name="recipe-1", recipe_hash="h1", backend="builtin") == 10_001
        assert store.enqueue("c.toml") == 3


def test_a_destination_with_rows_is_refused_unless_replaced(cli, pg_url: str, tmp_path: Path) -> None:
    src_url = f"sqlite:///{tmp_path / 'src.db'}"
    seed(Store.open(src_url), 20)
    assert cli("store", "copy", src_url, pg_url)[0] == 0
    code, out, err = cli("store", "copy", src_url, pg_url)
    assert code == 1 and out == "" and err.count("\n") == 1
    assert "the destination is not empty (" in err and "--replace" in err
    Store.open(pg_url).add_run(name="recipe-1", recipe_hash="h1", backend="builtin")
    code, out, err = cli("store", "copy", src_url, pg_url, "--replace", "--json")
    assert code == 0, err
    assert _info(cli, pg_url)["tables"]["run"] == 20


def test_bad_input_is_one_line_with_exit_2(cli, tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    Store.open(f"sqlite:///{db}")
    for argv, words in [
        (("store", "copy", str(tmp_path / "missing.db"), str(tmp_path / "b.db")), "no such store file"),
        (("store", "copy", str(db), "mysql://u:pw@h/db"), "unsupported database"),
        (("store", "copy", str(db), "postgresql+psycopg2://u:pw@h/db"), "psycopg"),
        (("store", "copy", str(db), str(db)), "same store"),
        (("store", "info", "::not a url::/x"), "no such store file"),
    ]:
        code, out, err = cli(*argv)
        assert code == 2 and out == "" and err.count("\n") == 1 and words in err, (argv, err)
        assert "pw" not in err


def test_the_password_is_never_shown(cli, pg_server, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    pg_server.psql("postgres", "ALTER ROLE zerodeck PASSWORD 'hunter2'")
    url = pg_url.replace("zerodeck@", "zerodeck:hunter2@")
    monkeypatch.setenv("ZERODECK_DB", url)
    code, out, err = cli("store", "info")
    assert code == 0 and "hunter2" not in out and "zerodeck:***@" in out, out
    code, out, err = cli("store", "info", "--json")
    assert json.loads(out)["url"] == url.replace("hunter2", "***")
    pg_server.stop()
    try:
        from zerodeck.core.cli.context import forget_store
        from zerodeck.store.engine import reset_engines

        forget_store()
        reset_engines()
        code, out, err = cli("store", "info")
    finally:
        pg_server.start()
    assert code == 1 and "store unreachable" in err and "hunter2" not in err
