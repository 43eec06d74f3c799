"""What the live screen draws from a telemetry snapshot: frames of card views, and a short history.

Reading the cards is core's job (`zerodeck.core.telemetry`: the sources, the poller with its stale
marking and time-out, the card key and the HBM-or-memory choice); this module only turns one
`Snapshot` into the view objects of `view.py`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Sequence

from zerodeck.core.capacity import card_capacity_mb
from zerodeck.core.telemetry.model import Card, Snapshot, card_keys
from zerodeck.tui.view import CardView, Frame, HostView, ProcView

HISTORY = 300  # samples kept per card: five minutes at 1 Hz


def frame_from_snapshot(snap: Snapshot, run_pids: Collection[int] | None = None,
                        card_gb: float | None = None) -> Frame:
    """A frame from a core snapshot; with `run_pids`, the cards running those processes are marked.
    A card's capacity follows `core.capacity` (a CPU rank's is the followed run's `card_gb`, not the
    host's RAM), so the bar reads as the plan and compare read it.

    Each process is listed under its card; on the CPU a rank's children (a compiler) are marked as
    such, so their memory reads as theirs, not the rank's."""
    keys = _unique(card_keys(snap.cards), snap.cards)
    by_slot: dict[tuple[int | None, int], str] = {}
    rank_pids = {c.pid for c in snap.cards if c.pid is not None}
    for c, key in zip(snap.cards, keys):
        by_slot.setdefault((c.npu, c.chip or 0), key)
    wanted = set(run_pids or ())
    pids: dict[str, list[int]] = {}
    procs: list[ProcView] = []
    for p in snap.processes:
        found = by_slot.get((p.npu, p.chip or 0))
        if found is None or p.pid is None:
            continue
        key, pid = found, int(p.pid)
        pids.setdefault(key, []).append(pid)
        procs.append(ProcView(card=key, pid=pid, name=str(p.name or ""), mem_mb=_num(p.memory_mb),
                              child=bool(rank_pids) and pid not in rank_pids, mine=pid in wanted))
    views = tuple(
        CardView(key=key, name=str(c.name or ""), health=c.health, used_mb=c.device_used_mb,
                 total_mb=_capacity_mb(snap.source, card_gb, c.device_total_mb), util_pct=c.aicore_pct,
                 temp_c=c.temp_c, power_w=c.power_w, pids=tuple(pids.get(key, ())))
        for c, key in zip(snap.cards, keys))
    host = None
    if snap.host is not None:
        host = HostView(used_mb=snap.host.ram_used_mb, total_mb=snap.host.ram_total_mb, cpu_pct=snap.host.cpu_pct)
    mine: frozenset[str] = frozenset()
    if wanted:
        mine = frozenset(v.key for v in views if wanted & set(v.pids))
    return Frame(source=snap.source or "?", cards=views, host=host, error=snap.error, stale=snap.stale, mine=mine,
                 processes=tuple(procs))


def _capacity_mb(source: str | None, card_gb: float | None, total_mb: float | None) -> float | None:
    # With no run followed a CPU rank has no card_gb: its bar stays against what telemetry read.
    cap = card_capacity_mb(device=None, card_gb=card_gb, source=source, total_mb=total_mb)
    return total_mb if cap is None else cap


def _unique(keys: list[str], cards: Sequence[Card]) -> list[str]:
    """Card keys made unique: two runs' rank 0 on one machine are two rows, not one row drawn twice."""
    seen: set[str] = set()
    out: list[str] = []
    for key, c in zip(keys, cards):
        if key in seen:
            key = f"{key}@{c.pid}" if c.pid is not None else f"{key}#{len(out)}"
        seen.add(key)
        out.append(key)
    return out


def _num(value: float | int | None) -> float | None:
    return None if value is None else float(value)


class History:
    """The last few minutes of memory use per card, for sparklines; bounded, so memory stays flat."""

    def __init__(self, size: int = HISTORY) -> None:
        self.size = size
        self.cards: dict[str, deque[float]] = {}
        self.host: deque[float] = deque(maxlen=size)

    def add(self, frame: Frame) -> None:
        seen = set()
        for c in frame.cards:
            seen.add(c.key)
            d = self.cards.get(c.key)
            if d is None:
                d = self.cards[c.key] = deque(maxlen=self.size)
            d.append(c.used_frac if c.used_frac is not None else 0.0)
        for key in [k for k in self.cards if k not in seen]:
            del self.cards[key]  # a card that went away (another source) keeps no history
        if frame.host is not None and frame.host.used_mb is not None and frame.host.total_mb:
            self.host.append(frame.host.used_mb / frame.host.total_mb)
