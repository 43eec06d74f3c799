"""The read model: what the store hands out. Plain frozen dataclasses, never live ORM rows.

Every reader (CLI, TUI, compare, calibration, the supervisor) gets runs as `RunRecord`: JSON columns
decoded once, datetimes timezone-aware (SQLite keeps no zone; everything zerodeck writes is UTC), and
the recipe axes that compare and calibration group by read from columns instead of re-parsing TOML.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, NamedTuple

# Run.status values in the order a run lives them.
STATUSES = ("queued", "starting", "running", "finished")
# Not finished yet: a supervisor owns it, or will (queued runs are recorded before they launch).
ACTIVE_STATUSES = ("queued", "starting", "running")
# A process of the run may exist right now (what the live view follows).
LIVE_STATUSES = ("starting", "running")
# Run.outcome once finished (`lost`: the supervisor vanished and nothing could tell how it ended).
OUTCOMES = ("succeeded", "oom", "comm_error", "failed", "killed", "lost")

# Run columns stored as JSON text, with the value an empty or unreadable one decodes to.
JSON_COLUMNS: dict[str, Any] = {
    "tags": (), "attempts_log": (), "argv": (), "env": {}, "rendered": {}, "versions": {},
    "summary": {}, "baseline": {}, "failure_snapshot": {}, "card_ids": (),
}
# The recipe axes written at create_run (migration 2 filled them for older rows).
AXIS_COLUMNS = ("model", "method", "lora_rank", "zero_stage", "offload", "micro_batch", "seq_len",
                "data_samples")


def utc(value: datetime | str | None) -> datetime | None:
    """A stored datetime as an aware UTC datetime (the one place naive values are fixed)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def decode_json(column: str, text: str | None) -> Any:
    empty = JSON_COLUMNS[column]
    if not text:
        return _fresh(empty)
    try:
        value = json.loads(text)
    except ValueError:
        return _fresh(empty)
    if isinstance(empty, tuple):
        return tuple(value) if isinstance(value, list) else ()
    return value if isinstance(value, dict) else {}


def encode_json(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(list(value) if isinstance(value, tuple) else value, default=str)


def _fresh(empty: Any) -> Any:
    return dict(empty) if isinstance(empty, dict) else empty


@dataclass(frozen=True)
class PeakSummary:
    """One telemetry source's card peaks of a run, aggregated in SQL (compare reads many runs)."""

    source: str
    cards: int
    peak_max_mb: float | None
    peak_mean_mb: float | None
    total_mb: float | None


@dataclass(frozen=True)
class RunRecord:
    id: int
    name: str
    recipe_hash: str
    status: str
    recipe_path: str | None = None
    grid: str | None = None
    tags: tuple[str, ...] = ()
    outcome: str | None = None
    reason: str | None = None
    outcome_device: str | None = None
    outcome_code: str | None = None
    outcome_rank: int | None = None
    outcome_excerpt: str | None = None
    exit_code: int | None = None
    attempts: int = 1
    attempts_log: tuple[Any, ...] = ()
    backend: str = ""
    device: str = ""
    cards: int = 1
    card_gb: float | None = None
    model: str | None = None
    method: str | None = None
    lora_rank: int | None = None
    zero_stage: int | None = None
    offload: str | None = None
    micro_batch: int | None = None
    seq_len: int | None = None
    data_samples: int | None = None
    argv: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    rendered: dict[str, str] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)
    host: str | None = None
    workdir: str | None = None
    log_path: str | None = None
    supervisor_pid: int | None = None
    pgid: int | None = None
    master_port: int | None = None
    stop_requested: bool = False
    created_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    predicted_peak_gib: float | None = None
    measured_peak_gib: float | None = None
    steps_done: int | None = None
    steps_total: int | None = None
    final_loss: float | None = None
    samples_per_s: float | None = None
    tokens_per_s: float | None = None
    step_time_s: float | None = None
    train_runtime_s: float | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    baseline: dict[str, Any] = field(default_factory=dict)
    failure_snapshot: dict[str, Any] = field(default_factory=dict)
    card_ids: tuple[int, ...] = ()
    hccl_base_port: int | None = None
    hccl_ports: int | None = None
    placement: str | None = None
    parent_id: int | None = None
    resumed_from: str | None = None
    stalled_at: datetime | None = None
    # Filled only by the bulk read for comparison (`Store.run_records`).
    card_peaks: tuple[PeakSummary, ...] = ()

    @property
    def finished(self) -> bool:
        return self.status == "finished"

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    def brief(self) -> dict[str, Any]:
        """The run as `zerodeck runs --json` and `run --json` print it (a command-line contract)."""
        values = self.__dict__
        return {key: _jsonable(values[key]) for key in BRIEF_FIELDS}

    def as_dict(self) -> dict[str, Any]:
        """Every column, JSON-ready (`zerodeck show --json`)."""
        out = {f.name: _jsonable(getattr(self, f.name)) for f in fields(self) if f.name != "card_peaks"}
        return out


BRIEF_FIELDS = (
    "id", "name", "status", "outcome", "reason", "backend", "device", "cards", "steps_done", "steps_total",
    "final_loss", "samples_per_s", "tokens_per_s", "train_runtime_s", "measured_peak_gib", "exit_code",
    "attempts", "created_at", "started_at", "ended_at", "log_path", "recipe_path", "host", "card_ids",
    "stalled_at", "parent_id",
)
RECORD_FIELDS = tuple(f.name for f in fields(RunRecord) if f.name != "card_peaks")
TIME_FIELDS = ("created_at", "started_at", "ended_at", "stalled_at")


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


def records_from_rows(rows: Sequence[Sequence[Any]], peaks: Sequence[tuple[PeakSummary, ...]] | None = None
                      ) -> list[RunRecord]:
    """RunRecords from raw column tuples in `RECORD_FIELDS` order (JSON text, naive or text datetimes).

    JSON columns are decoded a column at a time in one parser call: ten thousand runs times nine
    columns of separate `json.loads` calls cost most of a second."""
    cols = list(zip(*rows)) if rows else [() for _ in RECORD_FIELDS]
    decoded: dict[str, list[Any]] = {}
    for i, name in enumerate(RECORD_FIELDS):
        if name in JSON_COLUMNS:
            decoded[name] = _decode_column(name, list(cols[i]))
        elif name in TIME_FIELDS:
            decoded[name] = [utc(v) for v in cols[i]]
        elif name == "stop_requested":
            decoded[name] = [bool(v) for v in cols[i]]
        else:
            decoded[name] = list(cols[i])
    peak_list = list(peaks) if peaks is not None else [()] * len(rows)
    # The values are complete and already typed, so each record's __dict__ is filled in one call: a frozen
    # dataclass's __init__ sets its 57 fields one object.__setattr__ at a time (~0.4 s per 10,000 runs).
    names = (*RECORD_FIELDS, "card_peaks")
    out = []
    new = object.__new__
    for values in zip(*(decoded[name] for name in RECORD_FIELDS), peak_list):
        rec = new(RunRecord)
        rec.__dict__.update(zip(names, values))
        out.append(rec)
    return out


def _decode_column(name: str, texts: list[str | None]) -> list[Any]:
    empty = JSON_COLUMNS[name]
    if texts and all(texts):
        try:
            values = json.loads("[" + ",".join(texts) + "]")  # type: ignore[arg-type]
        except ValueError:
            values = None
        if values is not None and len(values) == len(texts):
            if isinstance(empty, tuple):
                return [tuple(v) if isinstance(v, list) else () for v in values]
            return [v if isinstance(v, dict) else {} for v in values]
    return [decode_json(name, t) for t in texts]


class MetricRecord(NamedTuple):
    """One training step's numbers. A named tuple, not a frozen dataclass: charts and the live view
    read tens of thousands of them, and a frozen dataclass's `__init__` (a guarded `setattr` per
    field) made building them cost more than the query."""

    step: int
    t: float | None = None
    loss: float | None = None
    lr: float | None = None
    epoch: float | None = None
    grad_norm: float | None = None
    samples_per_s: float | None = None
    tokens_per_s: float | None = None
    mem_gib: float | None = None


@dataclass(frozen=True)
class CardPeakRecord:
    source: str
    card: str
    peak_mb: float | None = None
    baseline_mb: float | None = None
    total_mb: float | None = None


@dataclass(frozen=True)
class SampleRecord:
    """One telemetry reading of one card, as the recorder writes it."""

    t: float
    source: str
    card: str
    memory_used_mb: float | None = None
    memory_total_mb: float | None = None
    util_pct: float | None = None
    power_w: float | None = None
    temp_c: float | None = None


@dataclass(frozen=True)
class QueueRecord:
    id: int
    recipe_ref: str
    recipe_hash: str | None
    state: str
    run_id: int | None = None
    reason: str | None = None
    recipe_name: str | None = None
    added_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    # issue 14: the host it is pinned to (None: any), its claim token and who holds its lease
    host: str | None = None
    claim_token: int = 0
    lease_host: str | None = None
    lease_expires_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "recipe": self.recipe_name, "recipe_ref": self.recipe_ref, "state": self.state,
                "run_id": self.run_id, "reason": self.reason, "added_at": self.added_at,
                "started_at": self.started_at, "ended_at": self.ended_at, "host": self.host,
                "claimed_by": self.lease_host}


@dataclass(frozen=True)
class HoldRecord:
    """One ledger hold: `kind` card / port / hccl of `host`, held for a run (or a queue item being started)."""

    host: str
    kind: str
    ident: int
    run_id: int | None
    item_id: int | None
    holder_pid: int | None
    taken_at: datetime | None = None


@dataclass(frozen=True)
class HostCardRecord:
    """The last reading of one card of one host, with the run holding it (`zerodeck hosts`)."""

    host: str
    card: int
    memory_used_mb: float | None = None
    memory_total_mb: float | None = None
    foreign_pids: tuple[int, ...] = ()
    seen_at: datetime | None = None


@dataclass(frozen=True)
class EventRecord:
    """One run event (`show --json` "events": at, kind, detail)."""

    at: datetime
    kind: str
    detail: Any = None

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "kind": self.kind, "detail": self.detail}


# -- Slurm jobs (issue 15) ------------------------------------------------------------------------
@dataclass(frozen=True)
class SlurmJobRecord:
    """One run's Slurm job as the store holds it (`store.slurm_job(run_id)`)."""

    run_id: int
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

    def as_dict(self) -> dict[str, Any]:
        return {f.name: (v.isoformat() if isinstance(v := getattr(self, f.name), datetime) else v)
                for f in fields(self)}
