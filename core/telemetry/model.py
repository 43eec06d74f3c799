"""The plain snapshot objects every telemetry source returns and every consumer reads.

A value the tool did not give is None (shown as NA / `-` / blank); a printed 0 stays 0; a snapshot
that could not be refreshed keeps the last good cards with `stale=True` and says why in `error`.
These are dataclasses, never ORM rows, so a UI can hold them across threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

# The card fields of `zerodeck cards --json` (ARCHITECTURE.md, "Contracts": keep the order and names).
CARD_KEYS = ("npu", "chip", "name", "health", "power_w", "temp_c", "aicore_pct", "memory_used_mb",
             "memory_total_mb", "hbm_used_mb", "hbm_total_mb", "bus_id")
PROCESS_KEYS = ("npu", "chip", "pid", "name", "memory_mb")

Number = int | float


@dataclass
class Card:
    npu: int | None = None  # npu-smi NPU id, GPU index, or CPU rank index
    chip: int | None = None  # chip index inside the NPU (0 for single-chip cards and GPUs)
    name: str | None = None
    health: str | None = None
    power_w: Number | None = None
    temp_c: Number | None = None
    aicore_pct: Number | None = None  # AI Core % (npu), GPU util % (nvidia), CPU % (cpu rank)
    memory_used_mb: Number | None = None  # DDR (npu), framebuffer (nvidia), RSS (cpu rank)
    memory_total_mb: Number | None = None
    hbm_used_mb: Number | None = None
    hbm_total_mb: Number | None = None
    bus_id: str | None = None
    # Beyond the contract: how to address the card, and what else the tool printed.
    logical_id: int | None = None  # the id ASCEND_RT_VISIBLE_DEVICES / CUDA_VISIBLE_DEVICES use
    device_id: int | None = None  # the `Device` column of 310-era tables
    phy_id: int | None = None  # the `Phy-ID` column of Atlas A3 tables
    hugepages_used: Number | None = None
    hugepages_total: Number | None = None
    pid: int | None = None  # cpu ranks: the rank's process id
    rank: int | None = None  # cpu ranks: the RANK it carries; None for a run process standing in without one

    @property
    def key(self) -> str:
        """A stable short name for storage: "3", "3.1" (npu.chip), "rank0"."""
        return card_key(self, with_die=bool(self.chip))

    @property
    def device_used_mb(self) -> Number | None:
        """The memory a training job fills: HBM where the card has it, else the one memory it shows."""
        if self.hbm_total_mb:
            return self.hbm_used_mb
        return self.memory_used_mb

    @property
    def device_total_mb(self) -> Number | None:
        if self.hbm_total_mb:
            return self.hbm_total_mb
        return self.memory_total_mb

    def contract(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in CARD_KEYS}


def card_key(card: Card, *, with_die: bool) -> str:
    """`N` for a card, `N.C` for die C of NPU N, `rankN` for a CPU rank of a run."""
    if card.pid is not None:
        return f"rank{card.npu}"
    if card.npu is None:
        return "?"
    return f"{card.npu}.{card.chip or 0}" if with_die else str(card.npu)


def card_keys(cards: Sequence[Card]) -> list[str]:
    """The names a live view gives the cards of one read: where NPUs carry several dies (A3: 16 dies
    on 8 NPUs) every die is `N.C`, die 0 included, so it does not read as the whole NPU."""
    dies = len({c.npu for c in cards}) < len(cards)
    return [card_key(c, with_die=dies) for c in cards]


@dataclass
class Process:
    npu: int | None = None
    chip: int | None = None
    pid: int | None = None
    name: str | None = None
    memory_mb: Number | None = None
    container_pid: int | None = None  # the "Process id in container" column of newer npu-smi

    def contract(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in PROCESS_KEYS}


@dataclass
class HostStats:
    cpu_pct: float | None = None
    cpu_count: int | None = None
    ram_used_mb: float | None = None
    ram_total_mb: float | None = None
    swap_used_mb: float | None = None
    swap_total_mb: float | None = None


@dataclass
class Snapshot:
    source: str
    cards: list[Card] = field(default_factory=list)
    processes: list[Process] = field(default_factory=list)
    error: str | None = None  # one line: why this read failed ("npu-smi: timed out after 10 s")
    stale: bool = False  # cards are the last good read, not this one
    timed_out: bool = False  # the tool did not answer in time (the poller then backs off)
    t: float = 0.0  # monotonic time of the read
    wall: float = 0.0  # epoch seconds of the read
    duration_s: float | None = None  # how long the read took
    host: HostStats | None = None
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None

    def contract(self) -> dict[str, Any]:
        """The `zerodeck cards --json` shape."""
        return {"source": self.source, "cards": [c.contract() for c in self.cards],
                "processes": [p.contract() for p in self.processes]}

    def to_json(self) -> dict[str, Any]:
        """Everything, for Run.baseline / Run.failure_snapshot."""
        data = asdict(self)
        for card, src in zip(data["cards"], self.cards):
            card["key"] = src.key
        return data
