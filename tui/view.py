"""Plain, immutable objects the screens render.

Workers turn core results into these before posting them, so snapshot tests can build screens from
literal values. A run is the store's own read model, `RunRecord` (already frozen, decoded and
timezone-aware): the few things the screens derive from it are the functions below, not a copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zerodeck.store.records import RunRecord  # dataclass creation: ~20 ms of start-up


@dataclass(frozen=True)
class CatalogRow:
    name: str
    model: str
    method: str
    zero_stage: int
    offload: str
    cards: int
    device: str
    data_samples: int | None
    path: str
    grid: str | None = None
    per_card_gib: float | None = None
    capacity_gib: float | None = None
    verdict: str | None = None  # fits | tight | oom | None (planner unavailable or failed)
    plan_error: str | None = None


@dataclass(frozen=True)
class BadFile:
    path: str
    problems: tuple[str, ...]


@dataclass(frozen=True)
class CardPeakView:
    card: str
    peak_mb: float | None
    total_mb: float | None


@dataclass(frozen=True)
class Curves:
    """A run's training curves by step, for the terminal plots (Live and the run record)."""

    loss: tuple[tuple[int, float], ...] = ()
    eval_loss: tuple[tuple[int, float], ...] = ()
    samples_per_s: tuple[tuple[int, float], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.loss or self.eval_loss or self.samples_per_s)


@dataclass(frozen=True)
class RunDetail:
    run: RunRecord
    fields: tuple[tuple[str, str], ...]
    peaks: tuple[CardPeakView, ...] = ()
    losses: tuple[float, ...] = ()
    failure_snapshot: dict[str, Any] = field(default_factory=dict)
    log_tail: tuple[str, ...] = ()
    curves: Curves = field(default_factory=Curves)
    events: tuple[tuple[datetime, str, Any], ...] = ()  # (at, kind, detail), oldest first


@dataclass(frozen=True)
class Progress:
    """The run the live screen follows: where it is and how its loss moves."""

    run: RunRecord
    losses: tuple[float, ...] = ()
    step: int | None = None
    total: int | None = None
    samples_per_s: float | None = None
    eta_s: float | None = None
    curves: Curves = field(default_factory=Curves)
    # A Slurm run (issue 15): nodes x cards and the job's state ("PENDING (Resources)"), else None.
    cluster: ClusterView | None = None


@dataclass(frozen=True)
class ClusterView:
    """The Slurm side of the followed run, as the live screen shows it."""

    nodes: int
    cards: int
    state: str | None
    reason: str | None = None
    job_id: str | None = None

    def text(self) -> str:
        state = self.state or "?"
        if self.reason and self.state == "PENDING":
            state += f" ({self.reason})"
        return f"{self.nodes}x{self.cards} nodes·cards  Slurm {state}"


@dataclass(frozen=True)
class CardView:
    """One card, die or CPU rank as a live panel shows it; a missing value is None (shown N/A)."""

    key: str  # "0", "0.1", "rank0", "gpu0"
    name: str = ""
    health: str | None = None
    used_mb: float | None = None
    total_mb: float | None = None
    util_pct: float | None = None
    temp_c: float | None = None
    power_w: float | None = None
    pids: tuple[int, ...] = ()

    @property
    def used_frac(self) -> float | None:
        if self.used_mb is None or not self.total_mb:
            return None
        return max(0.0, min(1.0, self.used_mb / self.total_mb))


@dataclass(frozen=True)
class ProcView:
    """One process on a card: a rank (npu-smi's or NVIDIA's process table, or a CPU rank itself) or,
    on the CPU, a child of a rank (a compiler), whose memory is its own, not the rank's."""

    card: str
    pid: int
    name: str = ""
    mem_mb: float | None = None
    child: bool = False  # a CPU rank's child process, listed under the rank
    mine: bool = False  # one of the followed run's processes


@dataclass(frozen=True)
class HostView:
    used_mb: float | None = None
    total_mb: float | None = None
    cpu_pct: float | None = None


@dataclass(frozen=True)
class Frame:
    """One telemetry poll: every card of the source, the host, and the source's name."""

    source: str
    cards: tuple[CardView, ...] = ()
    host: HostView | None = None
    error: str | None = None
    stale: bool = False  # the cards are the last good read; `error` says why this one failed
    mine: frozenset[str] = frozenset()  # keys of the cards running the followed run's processes
    processes: tuple[ProcView, ...] = ()

    @property
    def kind(self) -> str:
        """What the cards are, for the column headers: npu, gpu or cpu (ranks)."""
        return {"npu-smi": "npu", "nvidia": "gpu", "cuda": "gpu"}.get(self.source, "cpu")


def run_label(run: RunRecord) -> str:
    """What the Runs table shows in the outcome column: the outcome, or where the run is."""
    if run.stalled_at is not None and not run.finished:
        return f"{run.status} (stalled)"
    return run.outcome or run.status


def run_duration_s(run: RunRecord, now: datetime) -> float | None:
    if run.started_at is None:
        return None
    return max(0.0, ((run.ended_at or now) - run.started_at).total_seconds())


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def fmt_num(value: float | None, fmt: str = "{:.1f}", na: str = "N/A") -> str:
    return na if value is None else fmt.format(value)
