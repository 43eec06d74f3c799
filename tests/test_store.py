"""The store API: engine settings, schema versions and migrations, typed writes, the RunRecord read model.

Tests taking `backend_url` run on SQLite and on a real PostgreSQL (tests/conftest.py)."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from zerodeck.store import engine as eng
from zerodeck.store import models
from zerodeck.store.api import Store
from zerodeck.store.engine import StoreError, get_engine, reset_engines
from zerodeck.store.migrations import AXIS_DEFAULTS, snapshot_axes
from zerodeck.store.records import CardPeakRecord, SampleRecord

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "store"


def _db(home: Path) -> Path:
    return home / "zerodeck.db"


def _add_run(store: Store, name: str = "r", **fields) -> int:
    store.save_snapshot(hash="h1", name=name, toml="name = 'r'\n", source_path=None)
    return store.add_run(name=name, recipe_hash="h1", backend="builtin", **fields)


@pytest.mark.sqlite_only
def test_sqlite_is_wal_with_busy_timeout(zd_home: Path) -> None:
    store = Store.from_environment()
    _add_run(store)
    with store.engine.connect() as conn:
        mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        timeout = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
    assert mode == "wal" and timeout == eng.BUSY_TIMEOUT_MS
    assert _db(zd_home).is_file()


@pytest.mark.sqlite_only
def test_zerodeck_db_url_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zd_home: Path) -> None:
    other = tmp_path / "elsewhere.sqlite"
    monkeypatch.setenv("ZERODECK_DB", f"sqlite:///{other}")
    _add_run(Store.from_environment())
    assert other.is_file() and not _db(zd_home).exists()


def _set_stored_version(path: Path, version: int) -> None:
    reset_engines()
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
    con.commit()
    con.close()


@pytest.mark.sqlite_only
def test_newer_schema_is_refused_untouched(zd_home: Path) -> None:
    _add_run(Store.from_environment())
    _set_stored_version(_db(zd_home), 99)
    before = _db(zd_home).read_bytes()
    with pytest.raises(StoreError, match="newer"):
        get_engine()
    assert _db(zd_home).read_bytes() == before


@pytest.mark.sqlite_only
def test_a_later_migration_keeps_rows(zd_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = _add_run(Store.from_environment(), "keep-me")
    reset_engines()
    current = models.SCHEMA_VERSION
    monkeypatch.setattr(models, "SCHEMA_VERSION", current + 1)
    steps = {current + 1: lambda conn: conn.execute(text("ALTER TABLE run ADD COLUMN note VARCHAR DEFAULT 'x'"))}
    monkeypatch.setattr(eng, "MIGRATIONS", steps)
    engine = get_engine()
    with engine.connect() as conn:
        row = conn.execute(text("SELECT name, note FROM run WHERE id = :i"), {"i": run_id}).one()
        version = conn.execute(text("SELECT value FROM meta WHERE key='schema_version'")).scalar()
    assert tuple(row) == ("keep-me", "x") and version == str(current + 1)
    assert (zd_home / f"zerodeck.db.v{current}.bak").is_file()


def test_a_version_1_store_gets_its_run_axes(tmp_path: Path) -> None:
    """A real database written by zerodeck 0.1.0 (schema 1): migration 2 fills the axis columns from
    each run's recipe snapshot, keeps every row and backs the file up first."""
    db = tmp_path / "old.db"
    shutil.copy(FIXTURES / "zerodeck-v1.db", db)
    store = Store.open(f"sqlite:///{db}")
    runs = {r.name: r for r in store.runs()}
    assert len(runs) == 4 and (tmp_path / "old.db.v1.bak").is_file()
    seven = runs["qwen2.5-7b-lora-z0-s20k"]
    assert (seven.model, seven.method, seven.lora_rank, seven.zero_stage, seven.offload) == (
        "Qwen2.5-7B", "lora", 8, 0, "none")
    assert (seven.micro_batch, seven.seq_len, seven.data_samples) == (1, 2048, 20000)
    assert seven.outcome == "succeeded" and seven.samples_per_s == 3.5
    assert runs["qwen2.5-32b-lora-z3-s80k"].zero_stage == 3
    demo = runs["demo-cpu-zero3"]
    assert (demo.model, demo.method, demo.lora_rank, demo.micro_batch, demo.seq_len) == (
        "zerodeck-tiny", "full", None, 4, 64)
    # A hand-written snapshot that names a model path and leaves the rest to the defaults.
    local = runs["local-full"]
    assert (local.model, local.method, local.zero_stage, local.seq_len, local.data_samples) == (
        "qwen-local", "full", 0, 2048, None)
    assert store.throughputs("qwen2.5-7b") == [3.5]


def test_migration_defaults_are_the_recipe_models_defaults() -> None:
    from zerodeck.core.recipe.model import MethodSpec, TrainSpec, ZeroSpec

    assert {
        "method": MethodSpec.model_fields["kind"].default,
        "lora_rank": MethodSpec.model_fields["rank"].default,
        "zero_stage": ZeroSpec.model_fields["stage"].default,
        "offload": ZeroSpec.model_fields["offload"].default,
        "micro_batch": TrainSpec.model_fields["micro_batch"].default,
        "seq_len": TrainSpec.model_fields["seq_len"].default,
    } == AXIS_DEFAULTS
    assert snapshot_axes("not = [toml") == {}


def test_updates_are_checked_and_json_columns_decoded(backend_url: str) -> None:
    store = Store.from_environment()
    run_id = _add_run(store, tags=["a", "b"])
    store.update_run(run_id, status="running", argv=["python", "-m", "x"], env={"A": "1"},
                     summary={"host": {"cpus": 2}}, attempts_log=[{"reason": "r"}])
    run = store.run(run_id)
    assert run is not None
    assert run.tags == ("a", "b") and run.argv == ("python", "-m", "x") and run.env == {"A": "1"}
    assert run.summary == {"host": {"cpus": 2}} and run.attempts_log == ({"reason": "r"},)
    assert run.created_at is not None and run.created_at.utcoffset() is not None
    assert run.active and not run.finished
    with pytest.raises(TypeError, match="not a Run column: bogus"):
        store.update_run(run_id, **{"bogus": 1})  # type: ignore[typeddict-unknown-key]
    with pytest.raises(KeyError):
        store.update_run(run_id + 100, status="running")
    store.finish_run(run_id, "oom", "rank 1 killed", outcome_rank=1)
    done = store.run(run_id)
    assert done is not None and done.finished and (done.outcome, done.outcome_rank) == ("oom", 1)
    assert isinstance(done.ended_at, datetime) and done.brief()["ended_at"].endswith("+00:00")


def test_unreadable_json_columns_decode_to_empty(backend_url: str) -> None:
    store = Store.from_environment()
    run_id = _add_run(store)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE run SET env = 'not json', tags = '{}' WHERE id = :i"), {"i": run_id})
    run = store.run(run_id)
    assert run is not None and run.env == {} and run.tags == ()
    # The bulk path decodes a column at a time and must fall back the same way.
    assert store.runs()[0].env == {} and store.run_records()[0].tags == ()


def test_run_records_aggregate_card_peaks_and_filter_tags(backend_url: str) -> None:
    store = Store.from_environment()
    a = _add_run(store, "a", tags=["sweep"])
    b = _add_run(store, "b", tags=["sweep_2"])  # LIKE's `_` must not match
    peaks = [CardPeakRecord("npu-smi", "0", 30_000.0, 3_000.0, 65_536.0),
             CardPeakRecord("npu-smi", "1", 34_000.0, 3_000.0, 65_536.0),
             CardPeakRecord("host", "host", 90_000.0, None, 500_000.0)]
    store.replace_telemetry(a, [SampleRecord(0.0, "npu-smi", "0", 30_000.0, 65_536.0)], peaks)
    (rec,) = store.run_records(tag="sweep")
    assert rec.id == a
    by_source = {p.source: p for p in rec.card_peaks}
    assert by_source["npu-smi"].cards == 2 and by_source["npu-smi"].peak_max_mb == 34_000.0
    assert by_source["npu-smi"].peak_mean_mb == 32_000.0 and by_source["host"].cards == 1
    assert [r.id for r in store.run_records(ids=[b, a])] == [a, b]
    assert store.max_card_peak_gib([a, b]) == {a: 34_000.0 / 1024}
    assert store.memory_series(a) == [(0.0, "npu-smi", "0", 30_000.0, 65_536.0)]
    # Replacing is a replace: the old rows go.
    store.replace_telemetry(a, [], [])
    assert store.card_peaks(a) == [] and store.memory_series(a) == []


def test_metrics_upsert_by_step(backend_url: str) -> None:
    store = Store.from_environment()
    run_id = _add_run(store)
    store.upsert_metrics(run_id, [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}])
    store.upsert_metrics(run_id, [{"step": 2, "lr": 0.1, "loss": None}])
    points = store.metrics(run_id)
    assert [(p.step, p.loss, p.lr) for p in points] == [(1, 2.0, None), (2, 1.5, 0.1)]
    assert [p.step for p in store.metrics(run_id, after_step=1)] == [2]


def test_metric_columns_reads_many_runs_in_step_order(backend_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from zerodeck.store import api

    store = Store.from_environment()
    a, b, silent = _add_run(store, "a"), _add_run(store, "b"), _add_run(store, "s")
    store.upsert_metrics(b, [{"step": 3, "loss": 1.0, "tokens_per_s": 90.0}, {"step": 1, "loss": 2.0}])
    store.upsert_metrics(a, [{"step": 2, "samples_per_s": 4.0}, {"step": 1, "loss": 3.0}])
    monkeypatch.setattr(api, "_CHUNK", 2)  # three runs: two queries
    got = store.metric_columns([b, a, silent, a], "tokens_per_s", "loss")
    assert got == {a: [(1, None, 3.0), (2, None, None)], b: [(1, None, 2.0), (3, 90.0, 1.0)], silent: []}
    assert [r[:3] for r in got[b]] == [(p.step, p.tokens_per_s, p.loss) for p in store.metrics(b)]
    with pytest.raises(ValueError, match="not a metric column: step, id"):
        store.metric_columns([a], "loss", "step", "id")


def test_stitch_chain_keeps_each_step_once_from_the_later_run() -> None:
    from zerodeck.store.api import stitch_chain

    parent = [(1, "p"), (2, "p"), (3, "p"), (4, "p")]
    child = [(3, "c"), (5, "c")]
    assert stitch_chain([parent, [], child]) == [(1, "p"), (2, "p"), (3, "c"), (5, "c")]
    assert stitch_chain([[], child]) == child and stitch_chain([]) == []


def test_active_statuses_include_queued(backend_url: str) -> None:
    store = Store.from_environment()
    queued = _add_run(store, "q", master_port=29500)
    running = _add_run(store, "r", status="running", master_port=29501)
    done = _add_run(store, "d", status="finished", master_port=29502)
    assert {r.id for r in store.active_runs()} == {queued, running}
    assert store.active_ports() == {29500, 29501}
    assert done not in {r.id for r in store.active_runs()}


def test_queue_claim_is_exclusive(backend_url: str) -> None:
    store = Store.from_environment()
    store.save_snapshot(hash="h1", name="alpha", toml="", source_path=None)
    a = store.enqueue("a.toml", "h1")
    b = store.enqueue("b.toml")
    first, second = store.claim_next(), store.claim_next()
    assert first is not None and second is not None
    assert (first.id, second.id) == (a, b) and first.state == "running" and first.recipe_name == "alpha"
    assert store.claim_next() is None
    store.update_queue_item(a, state="done", run_id=None)
    assert [i.state for i in store.queue_items()] == ["done", "running"]


@pytest.mark.sqlite_only
def test_cli_refuses_newer_database_in_one_line(cli, zd_home: Path) -> None:
    _add_run(Store.from_environment())
    _set_stored_version(_db(zd_home), 99)
    before = _db(zd_home).read_bytes()
    code, out, err = cli("runs", "--json")
    assert code == 1
    assert "newer than this zerodeck" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert _db(zd_home).read_bytes() == before


def test_the_run_table_the_read_model_and_the_typed_writes_name_the_same_columns() -> None:
    """The columns are written out three times on purpose (SQL table, frozen record, TypedDict for mypy);
    this keeps a column added to one from going missing in another."""
    from zerodeck.store.api import FinishFields, RunFields
    from zerodeck.store.records import RECORD_FIELDS

    table = set(models.Run.model_fields)
    assert set(RECORD_FIELDS) == table
    assert set(RunFields.__annotations__) == table - {"id"}
    assert set(RunFields.__annotations__) - set(FinishFields.__annotations__) == {"status", "outcome", "reason"}
