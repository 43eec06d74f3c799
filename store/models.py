"""The tables. A run points at the content-hashed snapshot of the recipe it ran, so editing a recipe
file later never changes what a past run shows.

Structured extras (argv, env, versions, rendered files, snapshots) are JSON text columns: they are
read whole, never queried inside, and this keeps the schema portable across SQLAlchemy backends.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Column, DateTime, Integer, String, UniqueConstraint
from sqlmodel import Field, SQLModel
from zerodeck.store.records import OUTCOMES, STATUSES

# 2: the recipe axes as run columns (model, method, lora_rank, zero_stage, offload, micro_batch,
#    seq_len, data_samples), so compare and calibration read columns instead of parsing TOML.
# 3: the card ledger (ledger_hold, host_card) and the run's placement (card_ids, HCCL port block,
#    placement warning).
# 4: run events, the stall flag and resume links (parent_id, resumed_from, stalled_at on run).
# 5: leases and hosts (issue 14): claim tokens on run and queue_item, the queue item's pinned host and
#    lease, and one `host` row per server with its last heartbeat.
# 6: the slurm_job table (a run submitted to Slurm: job id, state, nodes, queue wait).
SCHEMA_VERSION = 6
__all__ = ["OUTCOMES", "STATUSES", "SCHEMA_VERSION"]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Meta(SQLModel, table=True):
    __tablename__ = "meta"
    key: str = Field(primary_key=True)
    value: str


class RecipeSnapshot(SQLModel, table=True):
    __tablename__ = "recipe_snapshot"
    hash: str = Field(primary_key=True)
    name: str = Field(index=True)
    toml: str
    source_path: str | None = None
    created_at: datetime = Field(default_factory=utcnow)


class Run(SQLModel, table=True):
    __tablename__ = "run"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True)  # the recipe name
    recipe_hash: str = Field(foreign_key="recipe_snapshot.hash", index=True)
    recipe_path: str | None = None
    grid: str | None = Field(default=None, index=True)
    tags: str = "[]"  # JSON list
    status: str = Field(default="queued", index=True)
    outcome: str | None = Field(default=None, index=True)
    reason: str | None = None  # one line: why it failed / was killed / was lost
    outcome_device: str | None = None  # npu | cuda | cpu | host
    outcome_code: str | None = None  # e.g. EL0004, EI0006, -9
    outcome_rank: int | None = None
    outcome_excerpt: str | None = None
    exit_code: int | None = None
    attempts: int = 1
    attempts_log: str = "[]"  # JSON: one entry per retry, with why
    backend: str = ""
    device: str = ""
    cards: int = 1
    card_gb: float | None = None
    # the recipe axes, copied from the snapshot at create_run
    model: str | None = Field(default=None, index=True)
    method: str | None = None
    lora_rank: int | None = None
    zero_stage: int | None = None
    offload: str | None = None
    micro_batch: int | None = None
    seq_len: int | None = None
    data_samples: int | None = None
    argv: str = "[]"  # JSON list
    env: str = "{}"  # JSON, secrets masked
    rendered: str = "{}"  # JSON: file name -> content (ds_config.json, train.yaml, ...)
    versions: str = "{}"  # JSON
    host: str | None = None
    workdir: str | None = None
    log_path: str | None = None
    supervisor_pid: int | None = None
    pgid: int | None = None
    master_port: int | None = None  # the MASTER_PORT chosen for this run
    stop_requested: bool = False
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    # summary, filled as the run goes and at its end
    predicted_peak_gib: float | None = None
    measured_peak_gib: float | None = None  # max over cards, device memory
    steps_done: int | None = None
    steps_total: int | None = None
    final_loss: float | None = None
    samples_per_s: float | None = None
    tokens_per_s: float | None = None
    step_time_s: float | None = None
    train_runtime_s: float | None = None
    summary: str = "{}"  # JSON: anything else the log parsers found
    baseline: str = "{}"  # JSON: telemetry snapshot before the job started
    failure_snapshot: str = "{}"  # JSON: telemetry snapshot at the moment of failure
    # the card ledger (migration 3): where the run was placed, kept after its holds are given back
    card_ids: str = "[]"  # JSON list of the physical card indexes it held on `host`
    hccl_base_port: int | None = None  # HCCL_IF_BASE_PORT (Ascend), its block of hccl_ports ports
    hccl_ports: int | None = None
    placement: str | None = None  # one line when its processes were found on cards it was not given
    # -- watchdog and resume (issue 18, migration 4) --
    parent_id: int | None = Field(default=None, index=True)  # the run this one resumed
    resumed_from: str | None = None  # the checkpoint directory it continued from
    stalled_at: datetime | None = None  # set while the watchdog sees no progress; cleared when it moves


class MetricPoint(SQLModel, table=True):
    __tablename__ = "metric_point"
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", index=True)
    step: int
    t: float | None = None  # seconds since the run started
    loss: float | None = None
    lr: float | None = None
    epoch: float | None = None
    grad_norm: float | None = None
    samples_per_s: float | None = None
    tokens_per_s: float | None = None
    mem_gib: float | None = None


class TelemetrySample(SQLModel, table=True):
    __tablename__ = "telemetry_sample"
    id: int | None = Field(default=None, primary_key=True)
    run_id: int | None = Field(default=None, foreign_key="run.id", index=True)
    t: float  # seconds since the run started (negative: baseline before launch)
    source: str  # npu-smi | nvidia | cpu | host
    card: str  # "0", "0.1" (npu.chip), "rank0", "host"
    memory_used_mb: float | None = None
    memory_total_mb: float | None = None
    util_pct: float | None = None
    power_w: float | None = None
    temp_c: float | None = None


class CardPeak(SQLModel, table=True):
    __tablename__ = "card_peak"
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", index=True)
    source: str
    card: str
    peak_mb: float | None = None
    baseline_mb: float | None = None
    total_mb: float | None = None


class QueueItem(SQLModel, table=True):
    __tablename__ = "queue_item"
    id: int | None = Field(default=None, primary_key=True)
    recipe_ref: str  # the path or catalog name as the user gave it
    recipe_hash: str | None = None
    state: str = Field(default="pending", index=True)  # pending | running | done | failed | removed
    run_id: int | None = Field(default=None, foreign_key="run.id")
    reason: str | None = None
    added_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    ended_at: datetime | None = None


# -- the card ledger (issue 13) -----------------------------------------------------------------------


class LedgerHold(SQLModel, table=True):
    """One thing of one host held by one run: a card, its MASTER_PORT, a 16-port HCCL slot.

    Only held rows exist (giving back deletes them), so the unique constraint is the ledger's
    guarantee: two runners inserting the same (host, kind, ident) cannot both commit."""

    __tablename__ = "ledger_hold"
    __table_args__ = (UniqueConstraint("host", "kind", "ident", name="uq_ledger_hold"),)
    id: int | None = Field(default=None, primary_key=True)
    host: str
    kind: str  # card | port | hccl
    ident: int  # the card index, the port, the HCCL slot
    run_id: int | None = Field(default=None, foreign_key="run.id", index=True)
    item_id: int | None = Field(default=None, index=True)  # the queue item it was admitted for
    holder_pid: int | None = None  # the runner that took it (a dead holder's unbound holds are freed)
    taken_at: datetime = Field(default_factory=utcnow)


class HostCard(SQLModel, table=True):
    """The last reading of one card of one host (`zerodeck hosts`): what a runner saw there."""

    __tablename__ = "host_card"
    host: str = Field(primary_key=True)
    card: int = Field(primary_key=True)
    memory_used_mb: float | None = None
    memory_total_mb: float | None = None
    foreign_pids: str = "[]"  # JSON list: processes on the card that zerodeck did not start
    seen_at: datetime = Field(default_factory=utcnow)
# -- run events: watchdog, resume, alerts (issue 18, migration 4) ----------------------------------
class RunEvent(SQLModel, table=True):
    """Something that happened to a run besides its state changes: stalled, resumed, alert_sent, ..."""

    __tablename__ = "event"
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", index=True)
    at: datetime = Field(default_factory=utcnow)
    kind: str = Field(index=True)
    detail: str = "null"  # JSON: a line of text or an object (the per-card snapshot of a stall)


# -- issue 14: leases and hosts (migration 5) ------------------------------------------------------
# A claim is a lease: whoever claims a queue item gets its next claim token (fencing token) and holds
# it until `lease_expires_at`, renewed by the holder host's runner; the run made for the item carries
# the same token, and every later write of that run checks it in the same transaction
# (`Store.fenced`). Taking a claim over (an expired lease re-queued, a silent host's run marked lost)
# raises the token, so the old holder's next write is refused. The columns are added to the existing
# tables here, at the end, so the classes above stay as older migrations left them; store/api.py
# writes them through the Core tables.
Run.__table__.append_column(Column("claim_token", Integer, nullable=True))  # type: ignore[attr-defined]
QueueItem.__table__.append_column(Column("host", String, nullable=True, index=True))  # type: ignore[attr-defined]
QueueItem.__table__.append_column(  # type: ignore[attr-defined]
    Column("claim_token", Integer, nullable=False, default=0, server_default="0"))
QueueItem.__table__.append_column(Column("lease_host", String, nullable=True))  # type: ignore[attr-defined]
QueueItem.__table__.append_column(Column("lease_expires_at", DateTime, nullable=True))  # type: ignore[attr-defined]


class Host(SQLModel, table=True):
    """One server that runs zerodeck jobs: its last heartbeat (its runner, and the supervisors of its
    leased runs, renew it), and the runner that last reported its cards. A host silent past the grace
    period has its leased runs marked `lost` by whoever reconciles (core/launch/reconcile.py)."""

    __tablename__ = "host"
    name: str = Field(primary_key=True)
    last_heartbeat: datetime = Field(default_factory=utcnow)
    runner_pid: int | None = None
    runner_seen_at: datetime | None = None  # the last heartbeat of its runner (supervisors leave it)


# -- Slurm jobs (issue 15, migration 6) -------------------------------------------------------------
class SlurmJob(SQLModel, table=True):
    """The Slurm side of a run submitted with `[cluster] scheduler = "slurm"`: one row per run.

    A table of its own rather than run columns: most runs never touch a scheduler, and the state
    the scheduler reports (PENDING with its reason, RUNNING, TIMEOUT, ...) changes while the run's
    own status stays `running`."""

    __tablename__ = "slurm_job"
    run_id: int = Field(foreign_key="run.id", primary_key=True)
    job_id: str | None = Field(default=None, index=True)
    state: str | None = None  # Slurm's job state: PENDING, RUNNING, COMPLETED, TIMEOUT, ...
    state_reason: str | None = None  # squeue's %r: Resources, Priority, ReqNodeNotAvail, ...
    nodes: int = 1
    cards_per_node: int = 0
    node_list: str | None = None  # the job's nodes, expanded (zdn1,zdn2)
    partition: str | None = None
    exit_code: str | None = None  # Slurm's "code:signal" of the batch script
    submitted_at: datetime | None = None
    started_at: datetime | None = None  # when the job left the queue and ran
    ended_at: datetime | None = None
    queue_wait_s: float | None = None  # started_at - submitted_at: time waiting, apart from run time
