"""`Store`: the one typed door to the database. Nothing outside `store/` speaks SQL.

A process makes one Store from a URL at its entry point (`Store.open(url)`, or `Store.from_environment()`
where the CLI reads `ZERODECK_DB` / `ZERODECK_HOME` once) and passes it down. Each method runs its own
short transaction, so a crashed process never holds a lock another waits on, and returns the plain
records of `records.py`. Updates are typed: `update_run(id, **fields)` takes only `RunFields` keys, which
mypy checks at every call site, and the common transitions have names of their own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypedDict, TypeVar

from sqlalchemy import Engine, String, Table, delete, func, insert, or_, select, text, type_coerce, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session
from typing_extensions import Unpack
from zerodeck.store.engine import database_url, get_engine
from zerodeck.store.errors import StoreError
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
    utcnow,
)
from zerodeck.store.records import (
    ACTIVE_STATUSES,
    JSON_COLUMNS,
    RECORD_FIELDS,
    TIME_FIELDS,
    CardPeakRecord,
    EventRecord,
    HoldRecord,
    HostCardRecord,
    MetricRecord,
    PeakSummary,
    QueueRecord,
    RunRecord,
    SampleRecord,
    SlurmJobRecord,
    decode_json,
    encode_json,
    records_from_rows,
    utc,
)

_CHUNK = 900  # stay far below SQLite's bound-parameter limit
DEFAULT_LEASE_S = 60.0  # a claim's lease and a host's grace: how long a silent holder keeps what it holds
HEARTBEAT_S = 10.0  # how often a fenced supervisor says its host is alive (well inside DEFAULT_LEASE_S)


class FinishFields(TypedDict, total=False):
    """The Run columns a caller may write besides status, outcome and reason (JSON columns as values)."""

    name: str
    recipe_hash: str
    recipe_path: str | None
    grid: str | None
    tags: Sequence[str]
    outcome_device: str | None
    outcome_code: str | None
    outcome_rank: int | None
    outcome_excerpt: str | None
    exit_code: int | None
    attempts: int
    attempts_log: Sequence[Any]
    backend: str
    device: str
    cards: int
    card_gb: float | None
    model: str | None
    method: str | None
    lora_rank: int | None
    zero_stage: int | None
    offload: str | None
    micro_batch: int | None
    seq_len: int | None
    data_samples: int | None
    argv: Sequence[str]
    env: dict[str, str]
    rendered: dict[str, str]
    versions: dict[str, Any]
    host: str | None
    workdir: str | None
    log_path: str | None
    supervisor_pid: int | None
    pgid: int | None
    master_port: int | None
    stop_requested: bool
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    predicted_peak_gib: float | None
    measured_peak_gib: float | None
    steps_done: int | None
    steps_total: int | None
    final_loss: float | None
    samples_per_s: float | None
    tokens_per_s: float | None
    step_time_s: float | None
    train_runtime_s: float | None
    summary: dict[str, Any]
    baseline: dict[str, Any]
    failure_snapshot: dict[str, Any]
    card_ids: Sequence[int]
    hccl_base_port: int | None
    hccl_ports: int | None
    placement: str | None
    parent_id: int | None
    resumed_from: str | None
    stalled_at: datetime | None


class RunFields(FinishFields, total=False):
    """Every Run column a caller may write, with its Python type; mypy checks each `update_run` call."""

    status: str
    outcome: str | None
    reason: str | None


class QueueFields(TypedDict, total=False):
    state: str
    run_id: int | None
    reason: str | None
    started_at: datetime | None
    ended_at: datetime | None


def _encoded(fields: dict[str, Any]) -> dict[str, Any]:
    unknown = set(fields) - set(RunFields.__annotations__)
    if unknown:  # a dict splatted past mypy
        raise TypeError(f"not a Run column: {', '.join(sorted(unknown))}")
    return {k: encode_json(v) if k in JSON_COLUMNS else v for k, v in fields.items()}


# SQL is written against the Core tables: their columns are typed as SQL expressions for mypy, where the
# SQLModel class attributes read as plain Python values.
_RUN: Table = Run.__table__  # type: ignore[attr-defined]
_METRIC: Table = MetricPoint.__table__  # type: ignore[attr-defined]
_QUEUE: Table = QueueItem.__table__  # type: ignore[attr-defined]
_SNAP: Table = RecipeSnapshot.__table__  # type: ignore[attr-defined]
_PEAK: Table = CardPeak.__table__  # type: ignore[attr-defined]
_SAMPLE: Table = TelemetrySample.__table__  # type: ignore[attr-defined]
_HOLD: Table = LedgerHold.__table__  # type: ignore[attr-defined]
_HOST: Table = HostCard.__table__  # type: ignore[attr-defined]
_EVENT: Table = RunEvent.__table__  # type: ignore[attr-defined]
_HOSTROW: Table = Host.__table__  # type: ignore[attr-defined]
_RUN_COLUMNS = [_RUN.c[name] for name in RECORD_FIELDS]
# Datetimes come back as stored text and are parsed by fromisoformat (C), not per-value type hooks.
_RUN_SELECT = [type_coerce(c, String) if c.key in TIME_FIELDS else c for c in _RUN_COLUMNS]


class Store:
    """A database: SQLite (the embedded default) or any SQLAlchemy URL."""

    def __init__(self, engine: Engine, url: str) -> None:
        self.engine = engine
        self.url = url

    @classmethod
    def open(cls, url: str, *, readonly: bool = False) -> Store:
        """`readonly` opens with SQLite's read-only mode: such a store can never write, by mistake or not."""
        return cls(get_engine(url, readonly=readonly), url)

    @classmethod
    def from_environment(cls) -> Store:
        """The store named by `ZERODECK_DB`, else `$ZERODECK_HOME/zerodeck.db`: read at a process's entry."""
        return cls.open(database_url())

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    def _rows(self, query: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(query).all())  # one fetchall: iterating the result fetches row by row

    # -- recipe snapshots ----------------------------------------------------------------------
    def save_snapshot(self, *, hash: str, name: str, toml: str, source_path: str | None) -> None:
        with self._session() as s:
            if s.get(RecipeSnapshot, hash) is None:
                s.add(RecipeSnapshot(hash=hash, name=name, toml=toml, source_path=source_path))
                s.commit()

    def snapshot_text(self, hash: str) -> str | None:
        rows = self._rows(select(_SNAP.c.toml).where(_SNAP.c.hash == hash))
        return rows[0][0] if rows else None

    def snapshot_texts(self, hashes: Iterable[str]) -> dict[str, str]:
        """hash -> recipe TOML for the distinct snapshots asked for."""
        wanted = sorted(set(hashes))
        out: dict[str, str] = {}
        for i in range(0, len(wanted), _CHUNK):
            q = select(_SNAP.c.hash, _SNAP.c.toml).where(
                _SNAP.c.hash.in_(wanted[i:i + _CHUNK]))
            out.update({h: t for h, t in self._rows(q)})
        return out

    # -- runs: writes --------------------------------------------------------------------------
    def add_run(self, **fields: Unpack[RunFields]) -> int:
        return self._insert_run(None, dict(fields))

    def add_run_at(self, run_id: int, **fields: Unpack[RunFields]) -> int:
        """A run under a chosen id: tests keep their run ids apart from another store's on the same
        machine."""
        return self._insert_run(run_id, dict(fields))

    def _insert_run(self, run_id: int | None, fields: dict[str, Any]) -> int:
        with self._session() as s:
            run = Run(id=run_id, **_encoded(fields))
            s.add(run)
            if run_id is not None and self.engine.dialect.name == "postgresql":
                s.flush()
                # SQLite numbers the next run max(id) + 1; PostgreSQL's sequence knows nothing of an
                # id given by hand and would hand it out again later.
                s.execute(text("SELECT setval(pg_get_serial_sequence('run', 'id'), "
                               "(SELECT MAX(id) FROM run))"))
            s.commit()
            assert run.id is not None
            return run.id

    def update_run(self, run_id: int, **fields: Unpack[RunFields]) -> None:
        if not fields:
            return
        with self._session() as s:
            res = s.execute(update(Run).where(_RUN.c.id == run_id).values(**_encoded(dict(fields))))
            s.commit()
        if res.rowcount == 0:  # type: ignore[attr-defined]
            raise KeyError(run_id)

    def finish_run(self, run_id: int, outcome: str, reason: str | None = None,
                   **fields: Unpack[FinishFields]) -> None:
        """Record how a run ended (status finished, its outcome, reason and end time) and give back
        what it held in the card ledger, in one transaction: a finished run never keeps a card."""
        fields.setdefault("ended_at", utcnow())
        values = _encoded({**fields, "status": "finished", "outcome": outcome, "reason": reason})
        with self._session() as s:
            res = s.execute(update(Run).where(_RUN.c.id == run_id).values(**values))
            s.execute(delete(LedgerHold).where(_HOLD.c.run_id == run_id))
            s.commit()
        if res.rowcount == 0:  # type: ignore[attr-defined]
            raise KeyError(run_id)

    def request_stop(self, run_id: int) -> None:
        self.update_run(run_id, stop_requested=True)

    # -- runs: reads ---------------------------------------------------------------------------
    def run(self, run_id: int) -> RunRecord | None:
        rows = self._rows(select(*_RUN_SELECT).where(_RUN.c.id == run_id))
        return records_from_rows(rows)[0] if rows else None

    def runs(self, *, limit: int | None = None, statuses: Sequence[str] | None = None,
             ids: Sequence[int] | None = None, grid: str | None = None, newest_first: bool = True
             ) -> list[RunRecord]:
        q = select(*_RUN_SELECT).order_by(_RUN.c.id.desc() if newest_first else _RUN.c.id)
        if statuses:
            q = q.where(_RUN.c.status.in_(list(statuses)))
        if grid is not None:
            q = q.where(_RUN.c.grid == grid)
        if ids is not None:
            q = q.where(_RUN.c.id.in_(list(ids)))
        if limit:
            q = q.limit(limit)
        return records_from_rows(self._rows(q))

    def active_runs(self) -> list[RunRecord]:
        return self.runs(statuses=ACTIVE_STATUSES)

    def count_runs(self) -> int:
        return int(self._rows(select(func.count()).select_from(Run))[0][0])

    def active_ports(self) -> set[int]:
        q = select(_RUN.c.master_port).where(_RUN.c.status.in_(ACTIVE_STATUSES), _RUN.c.master_port.is_not(None))
        return {int(p) for (p,) in self._rows(q)}

    def stop_requested(self, run_id: int) -> bool:
        rows = self._rows(select(_RUN.c.stop_requested).where(_RUN.c.id == run_id))
        return bool(rows and rows[0][0])

    def existing_run_ids(self, ids: Sequence[int]) -> set[int]:
        found: set[int] = set()
        for i in range(0, len(ids), _CHUNK):
            found.update(r[0] for r in self._rows(select(_RUN.c.id).where(_RUN.c.id.in_(list(ids[i:i + _CHUNK])))))
        return found

    def latest_run_ids_by_name(self, names: Iterable[str] | None = None) -> dict[str, int]:
        """The newest run (highest id) of each recipe name, or of the names given."""
        q = select(_RUN.c.name, func.max(_RUN.c.id)).group_by(_RUN.c.name)
        if names is not None:
            q = q.where(_RUN.c.name.in_(list(names)))
        return {name: int(rid) for name, rid in self._rows(q)}

    def grid_run_ids(self, run_id: int) -> list[int]:
        """Every run of the grid the given run was expanded from ([] when it is not a grid member)."""
        run = self.run(run_id)
        if run is None or run.grid is None:
            return []
        q = select(_RUN.c.id).where(_RUN.c.grid == run.grid).order_by(_RUN.c.id)
        return [int(r[0]) for r in self._rows(q)]

    def run_records(self, *, ids: Sequence[int] | None = None, tag: str | None = None,
                    grid: str | None = None) -> list[RunRecord]:
        """Runs for comparison (all, or by ids / tag / grid) in id order, with `card_peaks` aggregated
        per telemetry source in the same statement: a comparison may span ten thousand runs."""
        peaks = (
            select(_PEAK.c.run_id, _PEAK.c.source, func.count(_PEAK.c.id).label("n"),
                   func.max(_PEAK.c.peak_mb).label("pmax"), func.avg(_PEAK.c.peak_mb).label("pmean"),
                   func.max(_PEAK.c.total_mb).label("tmax"))
            .group_by(_PEAK.c.run_id, _PEAK.c.source)
            .subquery()
        )
        base = (
            select(*_RUN_SELECT, peaks.c.source, peaks.c.n, peaks.c.pmax, peaks.c.pmean, peaks.c.tmax)
            .outerjoin(peaks, peaks.c.run_id == _RUN.c.id)
            .order_by(_RUN.c.id)
        )
        if grid is not None:
            base = base.where(_RUN.c.grid == grid)
        if tag is not None:
            base = base.where(_RUN.c.tags.like(f"%{_like_literal(json.dumps(tag))}%", escape="\\"))
        if ids is None:
            batches = [base]
        else:
            unique = sorted(set(ids))
            batches = [base.where(_RUN.c.id.in_(unique[i:i + _CHUNK])) for i in range(0, len(unique), _CHUNK)]
        raw: dict[int, tuple[Any, list[PeakSummary]]] = {}
        nf = len(RECORD_FIELDS)
        for q in batches:
            for row in self._rows(q):
                entry = raw.setdefault(row[0], (row[:nf], []))
                source, n, pmax, pmean, tmax = row[nf:]
                if source is not None:
                    entry[1].append(PeakSummary(source, int(n), pmax, pmean, tmax))
        ordered = [raw[k] for k in sorted(raw)]
        records = records_from_rows([v for v, _ in ordered], [tuple(p) for _, p in ordered])
        if tag is not None:  # LIKE found candidates; the JSON list decides
            records = [r for r in records if tag in r.tags]
        return records

    def calibration_rows(self) -> list[tuple[str, str, float | None, float | None, str | None]]:
        """(device, backend, predicted, measured, outcome) of every run with a measured peak."""
        r = _RUN.c
        q = select(r.device, r.backend, r.predicted_peak_gib, r.measured_peak_gib, r.outcome).where(
            r.measured_peak_gib.is_not(None))
        return [(r[0], r[1], r[2], r[3], r[4]) for r in self._rows(q)]

    def throughputs(self, model: str) -> list[float]:
        """Recorded samples/s of every run of this model (case-insensitive name)."""
        q = select(_RUN.c.samples_per_s).where(func.lower(_RUN.c.model) == model.lower(),
                                            _RUN.c.samples_per_s.is_not(None))
        return [float(r[0]) for r in self._rows(q) if r[0]]

    # -- metrics -------------------------------------------------------------------------------
    def upsert_metrics(self, run_id: int, points: Sequence[dict[str, Any]]) -> None:
        """Insert points, or update the one already stored for the same step (parsers report a step
        again when a later line adds columns to it)."""
        columns = [c for c in MetricPoint.model_fields if c not in ("id", "run_id")]
        # One statement to find the steps already stored and one to insert the new ones, whatever the
        # batch's size (a supervisor replaying a spool after an outage hands over minutes of points).
        merged: dict[int, dict[str, Any]] = {}
        for p in points:
            values = {k: v for k, v in p.items() if k in columns}
            have = merged.get(values["step"])
            if have is None:
                merged[values["step"]] = values
            else:  # a later line for the same step adds columns; it never blanks one
                have.update({k: v for k, v in values.items() if v is not None})
        if not merged:
            return
        with self._session() as s:
            stored: dict[int, int] = {}
            steps = list(merged)
            for i in range(0, len(steps), _CHUNK):
                q = select(_METRIC.c.step, _METRIC.c.id).where(_METRIC.c.run_id == run_id,
                                                               _METRIC.c.step.in_(steps[i:i + _CHUNK]))
                stored.update({int(step): int(pid) for step, pid in s.execute(q)})
            new = [{"run_id": run_id, **{c: v.get(c) for c in columns}} for step, v in merged.items()
                   if step not in stored]
            if new:
                s.execute(insert(_METRIC), new)
            for step, pid in stored.items():
                changes = {k: v for k, v in merged[step].items() if v is not None}
                if changes:
                    s.execute(update(MetricPoint).where(_METRIC.c.id == pid).values(**changes))
            s.commit()

    def metrics(self, run_id: int, *, after_step: int | None = None) -> list[MetricRecord]:
        q = select(_METRIC.c.step, _METRIC.c.t, _METRIC.c.loss, _METRIC.c.lr, _METRIC.c.epoch,
                   _METRIC.c.grad_norm, _METRIC.c.samples_per_s, _METRIC.c.tokens_per_s,
                   _METRIC.c.mem_gib).where(_METRIC.c.run_id == run_id)
        if after_step is not None:
            q = q.where(_METRIC.c.step > after_step)
        return [MetricRecord(*r) for r in self._rows(q.order_by(_METRIC.c.step))]

    def metric_columns(self, run_ids: Iterable[int], *columns: str) -> dict[int, list[tuple[Any, ...]]]:
        """Run id -> its `(step, *columns)` rows in step order, every recorded step (a value may be
        None). For charts of many runs: a chunk of runs per query and only the columns drawn, where
        `metrics` per run built every column of 50,000 points for a 50-run loss chart."""
        unknown = [c for c in columns if c == "step" or c not in MetricRecord._fields]
        if unknown:
            raise ValueError(f"not a metric column: {', '.join(unknown)}")
        wanted = sorted(set(run_ids))
        out: dict[int, list[tuple[Any, ...]]] = {rid: [] for rid in wanted}
        cols = [_METRIC.c.step, *(_METRIC.c[c] for c in columns)]
        for i in range(0, len(wanted), _CHUNK):
            q = (select(_METRIC.c.run_id, *cols).where(_METRIC.c.run_id.in_(wanted[i:i + _CHUNK]))
                 .order_by(_METRIC.c.run_id, _METRIC.c.step))
            for row in self._rows(q):
                out[row[0]].append(row[1:])  # a Row's slice is a plain tuple
        return out

    # -- telemetry -----------------------------------------------------------------------------
    def replace_telemetry(self, run_id: int, samples: Sequence[SampleRecord],
                          peaks: Sequence[CardPeakRecord]) -> None:
        """Replace a run's samples and card peaks in one transaction (the recorder's series merges
        old buckets as it grows, so what was stored a minute ago may no longer exist)."""
        with self._session() as s:
            s.execute(delete(CardPeak).where(_PEAK.c.run_id == run_id))
            s.execute(delete(TelemetrySample).where(_SAMPLE.c.run_id == run_id))
            # Core inserts of many rows: one statement each on SQLite (executemany), a few batched
            # ones on PostgreSQL, where ORM objects cost a statement per row on SQLite.
            if samples:
                s.execute(insert(_SAMPLE), [{"run_id": run_id, **vars(x)} for x in samples])
            if peaks:
                s.execute(insert(_PEAK), [{"run_id": run_id, **vars(p)} for p in peaks])
            s.commit()

    def card_peaks(self, run_id: int) -> list[CardPeakRecord]:
        q = (select(_PEAK.c.source, _PEAK.c.card, _PEAK.c.peak_mb, _PEAK.c.baseline_mb, _PEAK.c.total_mb)
             .where(_PEAK.c.run_id == run_id).order_by(_PEAK.c.source, _PEAK.c.card))
        return [CardPeakRecord(*r) for r in self._rows(q)]

    def max_card_peak_gib(self, run_ids: Sequence[int]) -> dict[int, float]:
        """The largest card peak of each run (host RAM excluded), for runs whose summary has none."""
        out: dict[int, float] = {}
        for i in range(0, len(run_ids), _CHUNK):
            q = (select(_PEAK.c.run_id, func.max(_PEAK.c.peak_mb))
                 .where(_PEAK.c.run_id.in_(list(run_ids[i:i + _CHUNK])), _PEAK.c.source != "host")
                 .group_by(_PEAK.c.run_id))
            out.update({int(rid): float(mb) / 1024 for rid, mb in self._rows(q) if mb is not None})
        return out

    def memory_series(self, run_id: int) -> list[tuple[float, str, str, float | None, float | None]]:
        """(t, source, card, memory_used_mb, memory_total_mb) of one run's telemetry, in time order."""
        q = (select(_SAMPLE.c.t, _SAMPLE.c.source, _SAMPLE.c.card,
                    _SAMPLE.c.memory_used_mb, _SAMPLE.c.memory_total_mb)
             .where(_SAMPLE.c.run_id == run_id)
             .order_by(_SAMPLE.c.t, _SAMPLE.c.id))
        return [(r[0], r[1], r[2], r[3], r[4]) for r in self._rows(q)]

    # -- the queue -----------------------------------------------------------------------------
    def enqueue(self, recipe_ref: str, recipe_hash: str | None = None, *, host: str | None = None) -> int:
        """Append an item; `host` pins it to that server (only its runner claims it)."""
        with self._session() as s:
            res = s.execute(insert(_QUEUE).values(recipe_ref=recipe_ref, recipe_hash=recipe_hash, host=host,
                                                  state="pending", added_at=utcnow(), claim_token=0))
            s.commit()
        return int(res.inserted_primary_key[0])  # type: ignore[attr-defined]

    def queue_items(self, *, states: Sequence[str] | None = None, item_id: int | None = None,
                    limit: int | None = None, for_host: str | None = None) -> list[QueueRecord]:
        """Queue items in queue order; `for_host` keeps those that host's runner may claim (unpinned,
        or pinned to it)."""
        q = (select(_QUEUE.c.id, _QUEUE.c.recipe_ref, _QUEUE.c.recipe_hash, _QUEUE.c.state,
                    _QUEUE.c.run_id, _QUEUE.c.reason, _SNAP.c.name, _QUEUE.c.added_at,
                    _QUEUE.c.started_at, _QUEUE.c.ended_at, _QUEUE.c.host, _QUEUE.c.claim_token,
                    _QUEUE.c.lease_host, _QUEUE.c.lease_expires_at)
             .outerjoin(RecipeSnapshot, _SNAP.c.hash == _QUEUE.c.recipe_hash)
             .order_by(_QUEUE.c.id))
        if states:
            q = q.where(_QUEUE.c.state.in_(list(states)))
        if for_host is not None:
            q = q.where(or_(_QUEUE.c.host.is_(None), _QUEUE.c.host == for_host))
        if item_id is not None:
            q = q.where(_QUEUE.c.id == item_id)
        if limit:
            q = q.limit(limit)
        return [QueueRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], host=r[10],
                            claim_token=int(r[11] or 0), lease_host=r[12], lease_expires_at=utc(r[13]))
                for r in self._rows(q)]

    def queue_item(self, item_id: int) -> QueueRecord | None:
        found = self.queue_items(item_id=item_id)
        return found[0] if found else None

    def claim_next(self) -> QueueRecord | None:
        """Mark the oldest pending item running, atomically (UPDATE ... WHERE state='pending')."""
        while True:
            pending = self.queue_items(states=["pending"], limit=1)
            if not pending:
                return None
            item = pending[0]
            with self._session() as s:
                res = s.execute(update(QueueItem)
                                .where(_QUEUE.c.id == item.id, _QUEUE.c.state == "pending")
                                .values(state="running", started_at=utcnow()))
                s.commit()
            if res.rowcount == 1:  # type: ignore[attr-defined]
                return self.queue_item(item.id)

    def update_queue_item(self, item_id: int, **fields: Unpack[QueueFields]) -> None:
        with self._session() as s:
            s.execute(update(QueueItem).where(_QUEUE.c.id == item_id).values(**fields))
            if fields.get("state") in ("pending", "done", "failed", "removed"):
                # An item no longer being started holds nothing; its run's holds go with the run.
                s.execute(delete(LedgerHold).where(_HOLD.c.item_id == item_id, _HOLD.c.run_id.is_(None)))
            s.commit()

    # -- the card ledger -----------------------------------------------------------------------
    def admit(self, item_id: int, host: str, holds: Sequence[tuple[str, int]], holder_pid: int) -> bool:
        """`claim` without caring for the token: True when this process claimed the item."""
        return self.claim(item_id, host, holds, holder_pid) is not None

    def claim(self, item_id: int, host: str, holds: Sequence[tuple[str, int]], holder_pid: int, *,
              lease_s: float = DEFAULT_LEASE_S) -> int | None:
        """Claim a pending queue item for `host` and take its holds (kind, ident) there, all or nothing
        in one transaction; returns the claim's token (fencing token), None when another runner claimed
        the item first, the item is pinned to another host, or any hold is taken: the unique constraint
        on (host, kind, ident) decides, so two runners can never hold one card.

        On PostgreSQL the item row is locked `FOR UPDATE SKIP LOCKED`: a runner never waits on an item
        another is claiming, it moves on. On SQLite the transaction is the single writer. The claim is a
        lease held by `host` until now + `lease_s`, renewed by its runner (`heartbeat`)."""
        now = utcnow()
        rows = [{"host": host, "kind": kind, "ident": ident, "item_id": item_id, "holder_pid": holder_pid,
                 "taken_at": now} for kind, ident in holds]
        q = _QUEUE.c
        try:
            with self._session() as s:
                found = s.execute(select(q.claim_token).where(
                    q.id == item_id, q.state == "pending", or_(q.host.is_(None), q.host == host))
                    .with_for_update(skip_locked=True)).first()
                if found is None:
                    return None
                token = int(found[0] or 0) + 1
                res = s.execute(update(_QUEUE).where(q.id == item_id, q.state == "pending",
                                                     q.claim_token == found[0])
                                .values(state="running", started_at=now, claim_token=token, lease_host=host,
                                        lease_expires_at=now + timedelta(seconds=lease_s)))
                if res.rowcount != 1:  # type: ignore[attr-defined]
                    return None  # leaving the block rolls back
                if rows:
                    s.execute(insert(_HOLD), rows)
                s.commit()
        except IntegrityError:
            return None
        return token

    def hold_for_run(self, run_id: int, on_host: str, holds: Sequence[tuple[str, int]], holder_pid: int,
                     **fields: Unpack[RunFields]) -> bool:
        """Take holds (kind, ident) on `on_host` for a run started outside the queue, already bound to it,
        and record on the run where it was placed (`fields`), all or nothing in one transaction. False
        when any of them is held: the same unique constraint as `admit` decides."""
        now = utcnow()
        rows = [{"host": on_host, "kind": kind, "ident": ident, "run_id": run_id, "holder_pid": holder_pid,
                 "taken_at": now} for kind, ident in holds]
        try:
            with self._session() as s:
                if rows:
                    s.execute(insert(_HOLD), rows)
                if fields:
                    s.execute(update(Run).where(_RUN.c.id == run_id).values(**_encoded(dict(fields))))
                s.commit()
        except IntegrityError:
            return False
        return True

    def bind_holds(self, item_id: int, run_id: int, **fields: Unpack[RunFields]) -> None:
        """Point an admitted item and its holds at the run made for it, and record on the run where
        it was placed (`fields`: host, card_ids, ports), in one transaction."""
        with self._session() as s:
            s.execute(update(LedgerHold).where(_HOLD.c.item_id == item_id).values(run_id=run_id))
            s.execute(update(QueueItem).where(_QUEUE.c.id == item_id).values(run_id=run_id))
            if fields:
                s.execute(update(Run).where(_RUN.c.id == run_id).values(**_encoded(dict(fields))))
            s.commit()

    def holds(self, host: str | None = None) -> list[HoldRecord]:
        q = select(_HOLD.c.host, _HOLD.c.kind, _HOLD.c.ident, _HOLD.c.run_id, _HOLD.c.item_id,
                   _HOLD.c.holder_pid, type_coerce(_HOLD.c.taken_at, String)).order_by(_HOLD.c.id)
        if host is not None:
            q = q.where(_HOLD.c.host == host)
        return [HoldRecord(host=r[0], kind=r[1], ident=r[2], run_id=r[3], item_id=r[4], holder_pid=r[5],
                           taken_at=utc(r[6])) for r in self._rows(q)]

    def hold_states(self) -> list[tuple[int, str, int | None, str | None, str | None, int | None]]:
        """(hold id, host, holder pid, its run's status or None when it has no run or the run is gone,
        its item's state, its run id) for every hold: what freeing stale holds decides on."""
        q = (select(_HOLD.c.id, _HOLD.c.host, _HOLD.c.holder_pid, _RUN.c.status, _QUEUE.c.state, _HOLD.c.run_id)
             .outerjoin(Run, _RUN.c.id == _HOLD.c.run_id)
             .outerjoin(QueueItem, _QUEUE.c.id == _HOLD.c.item_id))
        return [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in self._rows(q)]

    def drop_holds(self, hold_ids: Sequence[int]) -> int:
        if not hold_ids:
            return 0
        with self._session() as s:
            res = s.execute(delete(LedgerHold).where(_HOLD.c.id.in_(list(hold_ids))))
            s.commit()
        return int(res.rowcount)  # type: ignore[attr-defined]

    def active_placements(self, host: str) -> list[tuple[int, str, tuple[int, ...]]]:
        """(run id, device, card_ids) of the unfinished runs placed on `host`: a run started with
        `zerodeck run` holds no ledger rows, but its cards are busy all the same."""
        q = select(_RUN.c.id, _RUN.c.device, _RUN.c.card_ids).where(
            _RUN.c.status.in_(ACTIVE_STATUSES), _RUN.c.host == host)
        return [(int(rid), dev, tuple(decode_json("card_ids", text))) for rid, dev, text in self._rows(q)]

    def active_hccl_blocks(self) -> list[tuple[int, int]]:
        q = select(_RUN.c.hccl_base_port, _RUN.c.hccl_ports).where(
            _RUN.c.status.in_(ACTIVE_STATUSES), _RUN.c.hccl_base_port.is_not(None))
        return [(int(b), int(n or 0)) for b, n in self._rows(q)]

    def record_host(self, host: str, cards: Sequence[HostCardRecord]) -> None:
        """Replace the last reading of `host`'s cards."""
        now = utcnow()
        with self._session() as s:
            s.execute(delete(HostCard).where(_HOST.c.host == host))
            s.add_all([HostCard(host=host, card=c.card, memory_used_mb=c.memory_used_mb,
                                memory_total_mb=c.memory_total_mb, foreign_pids=encode_json(c.foreign_pids),
                                seen_at=c.seen_at or now) for c in cards])
            s.commit()

    def host_cards(self) -> list[HostCardRecord]:
        q = (select(_HOST.c.host, _HOST.c.card, _HOST.c.memory_used_mb, _HOST.c.memory_total_mb,
                    _HOST.c.foreign_pids, type_coerce(_HOST.c.seen_at, String))
             .order_by(_HOST.c.host, _HOST.c.card))
        return [HostCardRecord(h, int(c), u, t, tuple(json.loads(f or "[]")), utc(seen))
                for h, c, u, t, f, seen in self._rows(q)]
    # -- run events and resume chains (issue 18) ------------------------------------------------
    def add_event(self, run_id: int, kind: str, detail: Any = None, *, at: datetime | None = None) -> None:
        """Record one event of a run (`stalled`, `progressed`, `resumed`, `alert_sent`, `alert_failed`)."""
        with self._session() as s:
            s.add(RunEvent(run_id=run_id, kind=kind, detail=json.dumps(detail, default=str), at=at or utcnow()))
            s.commit()

    def events(self, run_id: int, *, kinds: Sequence[str] | None = None) -> list[EventRecord]:
        """A run's events, oldest first."""
        q = select(type_coerce(_EVENT.c.at, String), _EVENT.c.kind, _EVENT.c.detail).where(
            _EVENT.c.run_id == run_id)
        if kinds:
            q = q.where(_EVENT.c.kind.in_(list(kinds)))
        out = []
        for at, kind, detail in self._rows(q.order_by(_EVENT.c.id)):
            try:
                value = json.loads(detail) if detail else None
            except ValueError:
                value = detail
            when = utc(at)
            assert when is not None
            out.append(EventRecord(when, kind, value))
        return out

    def run_chain(self, run_id: int) -> list[RunRecord]:
        """The run and the runs it resumed, oldest first (a resumed run names its parent)."""
        chain: list[RunRecord] = []
        seen: set[int] = set()
        current: int | None = run_id
        while current is not None and current not in seen:
            seen.add(current)
            run = self.run(current)
            if run is None:
                break
            chain.append(run)
            current = run.parent_id
        return chain[::-1]

    def chain_metrics(self, run_id: int) -> list[MetricRecord]:
        """The chain's metric points as one curve: each run's points up to the step its child resumed
        from, then the child's (a step re-done after the checkpoint counts once, from the later run)."""
        return stitch_chain([self.metrics(run.id) for run in self.run_chain(run_id)])

    # -- added by the Slurm area (issue 15) ------------------------------------------------------
    def upsert_slurm_job(self, run_id: int, **fields: Unpack[SlurmFields]) -> None:
        """Create or update the run's Slurm row with the given columns."""
        unknown = set(fields) - set(SlurmFields.__annotations__)
        if unknown:
            raise TypeError(f"not a slurm_job column: {', '.join(sorted(unknown))}")
        with self._session() as s:
            row = s.get(SlurmJob, run_id)
            if row is None:
                s.add(SlurmJob(run_id=run_id, **fields))
            else:
                for key, value in fields.items():
                    setattr(row, key, value)
                s.add(row)
            s.commit()

    def slurm_job(self, run_id: int) -> SlurmJobRecord | None:
        found = self.slurm_jobs([run_id])
        return found[0] if found else None

    def slurm_jobs(self, run_ids: Sequence[int] | None = None) -> list[SlurmJobRecord]:
        """Slurm rows of the given runs (all when None), oldest run first."""
        table: Table = SlurmJob.__table__  # type: ignore[attr-defined]
        q = select(table).order_by(table.c.run_id)
        if run_ids is not None:
            q = q.where(table.c.run_id.in_(list(run_ids)))
        out = []
        for row in self._rows(q):
            values: dict[str, Any] = {k: (utc(v) if isinstance(v, datetime) else v) for k, v in row._mapping.items()}
            out.append(SlurmJobRecord(**values))
        return out


    # -- issue 14: leases and hosts ---------------------------------------------------------------
    # The claim protocol. `claim` gives a queue item's next claim token to the runner that takes it;
    # `bind_claim` carries it onto the run made for the item; every later write of that run goes through
    # `fenced(run_id, token)`, which checks the token in the same transaction. Taking a claim over
    # (`expire_claims` re-queues an item whose runner never made its run and stopped renewing;
    # `lose_run` ends the run of a silent host) raises the token, so the former holder's next write
    # raises `LeaseLost` and lands nothing.

    def fenced(self, run_id: int, token: int, *, host: str | None = None,
               heartbeat_s: float = HEARTBEAT_S) -> FencedStore:
        """This store, writing as the holder of run `run_id`'s claim `token`: see `FencedStore`."""
        return FencedStore(self, run_id, token, host=host, heartbeat_s=heartbeat_s)

    def bind_claim(self, item_id: int, token: int, run_id: int, **fields: Unpack[RunFields]) -> None:
        """`bind_holds` for the holder of claim `token`: the item, its holds and the run (which takes
        the token) in one transaction; LeaseLost when the claim was taken over meanwhile."""
        q = _QUEUE.c
        with self._session() as s:
            res = s.execute(update(_QUEUE).where(q.id == item_id, q.claim_token == token, q.state == "running")
                            .values(run_id=run_id))
            if res.rowcount != 1:  # type: ignore[attr-defined]
                raise LeaseLost(f"queue item {item_id}", token)
            s.execute(update(LedgerHold).where(_HOLD.c.item_id == item_id).values(run_id=run_id))
            s.execute(update(_RUN).where(_RUN.c.id == run_id).values(claim_token=token, **_encoded(dict(fields))))
            s.commit()

    def finish_item(self, item_id: int, token: int, **fields: Unpack[QueueFields]) -> None:
        """`update_queue_item` for the holder of claim `token` (its lease ends with it); LeaseLost when
        the claim was taken over."""
        q = _QUEUE.c
        with self._session() as s:
            res = s.execute(update(_QUEUE).where(q.id == item_id, q.claim_token == token)
                            .values(lease_expires_at=None, **fields))
            if res.rowcount != 1:  # type: ignore[attr-defined]
                raise LeaseLost(f"queue item {item_id}", token)
            if fields.get("state") in ("pending", "done", "failed", "removed"):
                s.execute(delete(LedgerHold).where(_HOLD.c.item_id == item_id, _HOLD.c.run_id.is_(None)))
            s.commit()

    def run_claim_token(self, run_id: int) -> int | None:
        rows = self._rows(select(_RUN.c.claim_token).where(_RUN.c.id == run_id))
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    def heartbeat(self, host: str, *, runner_pid: int | None = None,
                  cards: Sequence[HostCardRecord] | None = None, lease_s: float | None = None) -> None:
        """Say `host` is alive, in one transaction: its `host` row (upserted; `runner_pid` when its
        runner says it), the latest state of its cards when given (one row per card, replaced, not a
        stream), and with `lease_s` the leases of the queue items its runner holds, renewed to now +
        `lease_s`. Supervisors renew the host only: a dead runner's half-made claims must expire."""
        now = utcnow()
        values: dict[str, Any] = {"last_heartbeat": now}
        if runner_pid is not None:
            values.update(runner_pid=runner_pid, runner_seen_at=now)
        for attempt in range(2):
            try:
                with self._session() as s:
                    res = s.execute(update(_HOSTROW).where(_HOSTROW.c.name == host).values(**values))
                    if res.rowcount != 1:  # type: ignore[attr-defined]
                        s.execute(insert(_HOSTROW).values(name=host, **values))
                    if cards is not None:
                        s.execute(delete(HostCard).where(_HOST.c.host == host))
                        if cards:
                            s.execute(insert(_HOST), [
                                {"host": host, "card": c.card, "memory_used_mb": c.memory_used_mb,
                                 "memory_total_mb": c.memory_total_mb, "foreign_pids": encode_json(c.foreign_pids),
                                 "seen_at": c.seen_at or now} for c in cards])
                    if lease_s is not None:
                        s.execute(update(_QUEUE).where(_QUEUE.c.lease_host == host, _QUEUE.c.state == "running")
                                  .values(lease_expires_at=now + timedelta(seconds=lease_s)))
                    s.commit()
                return
            except IntegrityError:
                if attempt:  # two first heartbeats of one host raced: the second one updates
                    raise

    def hosts(self) -> list[HostBeat]:
        q = select(_HOSTROW.c.name, type_coerce(_HOSTROW.c.last_heartbeat, String), _HOSTROW.c.runner_pid,
                   type_coerce(_HOSTROW.c.runner_seen_at, String)).order_by(_HOSTROW.c.name)
        out = []
        for name, beat, pid, seen in self._rows(q):
            when = utc(beat)
            assert when is not None
            out.append(HostBeat(name, when, pid, utc(seen)))
        return out

    def leased_runs(self) -> list[tuple[int, str | None, int, datetime | None]]:
        """(run id, host, claim token, created at) of every unfinished run made by a claim."""
        r = _RUN.c
        q = select(r.id, r.host, r.claim_token, type_coerce(r.created_at, String)).where(
            r.status.in_(ACTIVE_STATUSES), r.claim_token.is_not(None))
        return [(int(i), h, int(t), utc(c)) for i, h, t, c in self._rows(q)]

    def lose_run(self, run_id: int, token: int, host: str, silent_before: datetime, reason: str) -> bool:
        """End run `run_id` as `lost` because its host fell silent: only while it still holds claim
        `token` and `host` has not beaten since `silent_before` (checked inside the transaction, after
        the run row is taken, so a host that came back keeps its run). The token is raised, the run's
        holds given back and its queue item failed, all at once. False when any of that no longer holds.
        Never retried: a lost run stays lost until a person resumes or queues it again."""
        now = utcnow()
        with self._session() as s:
            res = s.execute(update(_RUN).where(_RUN.c.id == run_id, _RUN.c.claim_token == token,
                                               _RUN.c.status.in_(ACTIVE_STATUSES))
                            .values(status="finished", outcome="lost", reason=reason, ended_at=now,
                                    claim_token=token + 1))
            if res.rowcount != 1:  # type: ignore[attr-defined]
                return False
            beat = s.execute(select(type_coerce(_HOSTROW.c.last_heartbeat, String))
                             .where(_HOSTROW.c.name == host)).first()
            last = utc(beat[0]) if beat else None
            if last is not None and last > silent_before:
                s.rollback()
                return False
            s.execute(delete(LedgerHold).where(_HOLD.c.run_id == run_id))
            s.execute(update(_QUEUE).where(_QUEUE.c.run_id == run_id, _QUEUE.c.state == "running")
                      .values(state="failed", reason=f"run {run_id}: lost: {reason}", ended_at=now,
                              lease_expires_at=None, claim_token=_QUEUE.c.claim_token + 1))
            s.commit()
        return True

    def expire_claims(self) -> list[tuple[int, str]]:
        """Settle queue items whose lease ran out (their runner stopped renewing it): an item whose run
        was never made goes back to `pending` (nothing ran, so claiming it again starts it once), its
        half-taken holds given back; an item whose run has finished gets that run's end. An item whose
        run is still going is left to its host's heartbeat (`lose_run`). Returns (item id, new state)."""
        now = utcnow()
        q = _QUEUE.c
        rows = self._rows(select(q.id, q.claim_token, q.run_id, _RUN.c.status, _RUN.c.outcome, _RUN.c.reason)
                          .outerjoin(Run, _RUN.c.id == q.run_id)
                          .where(q.state == "running", q.lease_expires_at.is_not(None), q.lease_expires_at < now))
        done: list[tuple[int, str]] = []
        for item_id, token, run_id, status, outcome, why in rows:
            if run_id is not None and status != "finished":
                continue
            if run_id is None:
                values: dict[str, Any] = {"state": "pending", "started_at": None, "lease_host": None}
            else:
                ok = outcome == "succeeded"
                values = {"state": "done" if ok else "failed", "ended_at": now,
                          "reason": None if ok else f"run {run_id}: {outcome}: {why or ''}".rstrip(": ")}
            with self._session() as s:
                res = s.execute(update(_QUEUE).where(q.id == item_id, q.claim_token == token, q.state == "running",
                                                     q.lease_expires_at < now)
                                .values(lease_expires_at=None, claim_token=token + 1, **values))
                if res.rowcount != 1:  # type: ignore[attr-defined]
                    continue
                s.execute(delete(LedgerHold).where(_HOLD.c.item_id == item_id, _HOLD.c.run_id.is_(None)))
                s.commit()
            done.append((int(item_id), str(values["state"])))
        return done


class SlurmFields(TypedDict, total=False):
    job_id: str | None
    state: str | None
    state_reason: str | None
    nodes: int
    cards_per_node: int
    node_list: str | None
    partition: str | None
    exit_code: str | None
    submitted_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    queue_wait_s: float | None


@dataclass(frozen=True)
class HostBeat:
    """One host's row: when it last said it was alive, and its runner's pid and last word."""

    name: str
    last_heartbeat: datetime
    runner_pid: int | None = None
    runner_seen_at: datetime | None = None


class LeaseLost(StoreError):
    """A write of a run (or queue item) whose claim this process no longer holds: another host took it
    over, or a silent host's run was marked lost. Nothing of that write landed.

    It means STOP WRITING, never "try later": a layer that buffers writes while the store is
    unreachable (the supervisor's spool) must let it pass through unbuffered, and the writer stops
    (the supervisor ends its job and says so in its log; the runner drops the item)."""

    def __init__(self, what: str, token: int) -> None:
        super().__init__(f"{what}: claim token {token} no longer holds (another host took the claim over, "
                         "or the run was marked lost); this process stops writing it")
        self.what = what
        self.token = token


class FencedStore(Store):
    """The store as the holder of one run's claim sees it: every write (any method of `Store` that
    writes) first runs `UPDATE run SET claim_token = :t WHERE id = :id AND claim_token = :t` in the
    same transaction, and raises `LeaseLost` (landing nothing) when no row matches. On PostgreSQL that
    statement also locks the run's row until the transaction commits, so a takeover waits for the
    write in flight and the next one is refused; SQLite's single writer gives the same order.

    Once lost it stays lost: every later write raises at once. `stop_requested(run_id)` (the
    supervisor asks it every tick) reads the token as well, so a supervisor learns of the takeover
    within a tick even when it has nothing to write, and every `heartbeat_s` it renews its host's
    heartbeat, which keeps the host's runs from being judged lost while the host lives."""

    def __init__(self, base: Store, run_id: int, token: int, *, host: str | None = None,
                 heartbeat_s: float = HEARTBEAT_S) -> None:
        super().__init__(base.engine, base.url)
        self.run_id = run_id
        self.token = token
        self.host = host
        self.heartbeat_s = heartbeat_s
        self.lost = False
        self._beat_at = -1e18

    def _lost(self) -> LeaseLost:
        self.lost = True
        return LeaseLost(f"run {self.run_id}", self.token)

    @contextmanager
    def _session(self) -> Iterator[Session]:
        if self.lost:
            raise self._lost()
        with Session(self.engine, expire_on_commit=False) as session:
            res = session.execute(update(_RUN).where(_RUN.c.id == self.run_id, _RUN.c.claim_token == self.token)
                                  .values(claim_token=self.token))
            if res.rowcount != 1:  # type: ignore[attr-defined]
                raise self._lost()
            yield session

    def stop_requested(self, run_id: int) -> bool:
        if run_id != self.run_id:
            return super().stop_requested(run_id)
        if self.lost:
            raise self._lost()
        rows = self._rows(select(_RUN.c.stop_requested, _RUN.c.claim_token).where(_RUN.c.id == run_id))
        if not rows or rows[0][1] != self.token:
            raise self._lost()
        now = time.monotonic()
        if self.host and now - self._beat_at >= self.heartbeat_s:
            self._beat_at = now
            self.heartbeat(self.host)
        return bool(rows[0][0])


_Row = TypeVar("_Row", bound=tuple[Any, ...])


def stitch_chain(parts: Sequence[Sequence[_Row]]) -> list[_Row]:
    """A resume chain's rows (each run's, oldest first, in step order, the step first in each row) as
    one series: each run's rows up to the step its child resumed from, then the child's."""
    rows: dict[Any, _Row] = {}
    for mine in parts:
        if mine:
            # The resumed run re-did every step after its checkpoint: its rows replace the parent's.
            first = mine[0][0]
            rows = {step: r for step, r in rows.items() if step < first}
        rows.update({r[0]: r for r in mine})
    return [rows[k] for k in sorted(rows)]


def _like_literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


__all__ = ["Store", "RunFields", "FinishFields", "QueueFields", "SlurmFields", "decode_json", "FencedStore",
           "LeaseLost", "HostBeat", "DEFAULT_LEASE_S", "HEARTBEAT_S"]
