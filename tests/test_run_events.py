"""Run events, resume links and chain metrics in the store (issue 18, schema 4), and `show --json`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from sqlalchemy import text
from zerodeck.store.api import Store

from .conftest import FIXTURES, ROOT


def _store(tmp: Path) -> Store:
    return Store.open(f"sqlite:///{tmp / 'ev.db'}")


def _run(store: Store, **extra) -> int:  # type: ignore[no-untyped-def]
    from zerodeck.core.launch.api import create_run
    from zerodeck.core.recipe import load_recipe_file

    path = ROOT / "recipes" / "demo-cpu-zero0.toml"
    run_id = create_run(store, load_recipe_file(path), path)
    if extra:
        store.update_run(run_id, **extra)
    return run_id


def test_a_version_1_store_gains_the_event_table_and_resume_columns(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    shutil.copy(FIXTURES / "store" / "zerodeck-v1.db", db)
    store = Store.open(f"sqlite:///{db}")
    runs = store.runs()
    assert len(runs) == 4 and all(r.parent_id is None and r.stalled_at is None for r in runs)
    with store.engine.connect() as conn:
        cols = {row[1] for row in conn.execute(text("PRAGMA table_info(run)"))}
        tables = {row[0] for row in conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))}
    assert {"parent_id", "resumed_from", "stalled_at"} <= cols and "event" in tables
    store.add_event(runs[0].id, "stalled", {"step": 3})
    assert [e.kind for e in store.events(runs[0].id)] == ["stalled"]


def test_migration_4_is_safe_on_a_run_table_that_has_its_columns(tmp_path: Path) -> None:
    from zerodeck.store.migrations import MIGRATIONS

    store = _store(tmp_path)
    run_id = _run(store)
    with store.engine.begin() as conn:
        MIGRATIONS[4](conn)  # columns present: nothing added, nothing dropped
    assert store.run(run_id) is not None


def test_events_keep_their_order_kind_and_detail(tmp_path: Path) -> None:
    store = _store(tmp_path)
    run_id = _run(store)
    store.add_event(run_id, "stalled", {"step": 7, "cards": [{"card": "0", "memory_used_mb": 10.0}]})
    store.add_event(run_id, "alert_failed", "json://127.0.0.1/***: timed out")
    events = store.events(run_id)
    assert [e.kind for e in events] == ["stalled", "alert_failed"]
    assert events[0].detail["cards"][0]["memory_used_mb"] == 10.0 and events[0].at.tzinfo is not None
    assert store.events(run_id, kinds=["alert_failed"])[0].detail.endswith("timed out")
    assert json.loads(json.dumps(events[1].as_dict()))["kind"] == "alert_failed"


def test_the_chain_reads_as_one_curve(tmp_path: Path) -> None:
    store = _store(tmp_path)
    first = _run(store)
    second = _run(store, parent_id=first, resumed_from="/x/checkpoint-3")
    third = _run(store, parent_id=second, resumed_from="/x/checkpoint-5")
    store.upsert_metrics(first, [{"step": s, "loss": 10.0 - s} for s in range(1, 5)])  # 4 ran past checkpoint 3
    store.upsert_metrics(second, [{"step": s, "loss": 20.0 - s} for s in range(4, 7)])
    store.upsert_metrics(third, [{"step": s, "loss": 30.0 - s} for s in range(6, 9)])
    assert [r.id for r in store.run_chain(third)] == [first, second, third]
    curve = store.chain_metrics(third)
    assert [p.step for p in curve] == list(range(1, 9))
    assert [p.loss for p in curve] == [9.0, 8.0, 7.0, 16.0, 15.0, 24.0, 23.0, 22.0]


def test_show_json_has_events_parent_and_checkpoint(cli, zd_home: Path) -> None:
    from tests.launch_helpers import home_store

    store = home_store()
    parent = _run(store)
    child = _run(store, parent_id=parent, resumed_from="/ckpt/checkpoint-30")
    store.add_event(child, "resumed", {"parent": parent, "checkpoint": "/ckpt/checkpoint-30", "step": 30})
    store.update_run(child, status="running", supervisor_pid=None)
    code, out, _ = cli("show", str(child), "--json")
    data = json.loads(out)
    assert code == 0 and data["parent_id"] == parent and data["resumed_from"] == "/ckpt/checkpoint-30"
    assert [(e["kind"], e["detail"]["step"]) for e in data["events"]] == [("resumed", 30)]
    assert set(data["events"][0]) == {"at", "kind", "detail"}


def test_a_stalled_run_is_marked_in_runs_and_the_tui_label(cli, zd_home: Path) -> None:
    import os
    from datetime import datetime, timezone

    from zerodeck.tui.view import run_label

    from tests.launch_helpers import home_store

    store = home_store()
    run_id = _run(store)
    # A live supervisor (this process, as far as the liveness check can tell) so nothing reconciles it.
    store.update_run(run_id, status="running", stalled_at=datetime.now(timezone.utc), supervisor_pid=os.getpid())
    assert run_label(store.run(run_id)) == "running (stalled)"
    code, out, _ = cli("runs", "--json")
    (row,) = json.loads(out)
    assert code == 0 and row["stalled_at"] is not None and row["parent_id"] is None
    store.finish_run(run_id, "comm_error", "stalled for 12 min at step 40")
    assert run_label(store.run(run_id)) == "comm_error"
