"""Telemetry for the live screen: the source the app is given, the frames it yields, and history.

A source is any callable returning a `Frame`. The app polls it from one worker thread that never
overlaps itself (`npu-smi` can take seconds) and hands the event loop only the newest frame: a slow
terminal never works through a backlog of stale snapshots. The adapters here translate the core
telemetry snapshots (zerodeck.core.telemetry) into frames; they do no parsing of their own.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from zerodeck.tui.view import CardView, Frame, HostView

Source = Callable[[], Frame]
HISTORY = 300  # samples kept per card: five minutes at 1 Hz


def _get(obj: Any, *names: str) -> Any:
    for name in names:
        value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
        if value is not None:
            return value
    return None


def frame_from_snapshot(snap: Any, source: str | None = None) -> Frame:
    """A frame from a core telemetry snapshot (or its `zerodeck cards --json` dict).

    Field names follow the `cards` contract (ARCHITECTURE.md, "Contracts"): NPU cards show HBM, GPUs their
    framebuffer (`hbm_*` too), CPU ranks their resident memory (`memory_*`).
    """
    cards_in = _get(snap, "cards") or []
    procs = _get(snap, "processes") or []
    multi = len({_get(c, "npu") for c in cards_in}) < len(cards_in)
    keys = {(_get(c, "npu"), _get(c, "chip") or 0): _card_key(c, multi) for c in cards_in}
    pids: dict[str, list[int]] = {}
    for p in procs:
        key = keys.get((_get(p, "npu"), _get(p, "chip") or 0))
        pid = _get(p, "pid")
        if key is not None and pid is not None:
            pids.setdefault(key, []).append(int(pid))
    views = []
    for c in cards_in:
        key = _card_key(c, multi)
        hbm_total = _get(c, "hbm_total_mb")
        if hbm_total:
            used, total = _get(c, "hbm_used_mb"), hbm_total
        else:
            used, total = _get(c, "memory_used_mb"), _get(c, "memory_total_mb")
        views.append(CardView(
            key=key, name=str(_get(c, "name") or ""), health=_get(c, "health"), used_mb=used,
            total_mb=total, util_pct=_get(c, "aicore_pct", "util_pct"), temp_c=_get(c, "temp_c"),
            power_w=_get(c, "power_w"), pids=tuple(pids.get(key, ()))))
    host = _get(snap, "host")
    host_view = None
    if host is not None:
        host_view = HostView(used_mb=_get(host, "ram_used_mb", "used_mb"),
                             total_mb=_get(host, "ram_total_mb", "total_mb"), cpu_pct=_get(host, "cpu_pct"))
    return Frame(source=str(source or _get(snap, "source") or "?"), cards=tuple(views), host=host_view,
                 error=_get(snap, "error"))


def _card_key(card: Any, multi: bool) -> str:
    """`N` for one chip per NPU, `N.C` where NPUs have several dies (A3: 16 dies on 8 NPUs),
    `rankN` for the CPU ranks of a run."""
    npu, chip = _get(card, "npu"), _get(card, "chip") or 0
    if _get(card, "pid") is not None:
        return f"rank{npu}"
    if npu is None:
        return "?"
    return f"{npu}.{chip}" if multi else str(npu)


def from_core(src: Any, with_host: bool = True) -> Source:
    """A frame source over a core telemetry Source (npu-smi, NVIDIA, CPU ranks, or a replay)."""
    from zerodeck.core.telemetry.sources import read_host

    def read() -> Frame:
        snap = src.read()
        if with_host and getattr(snap, "host", None) is None:
            snap.host = read_host()
        return frame_from_snapshot(snap, getattr(src, "name", None))

    return read


def replay_source(name: str, outputs: list[str], with_host: bool = False) -> Source:
    """Captured `npu-smi info` / `nvidia-smi` outputs replayed through the real parsers."""
    from zerodeck.core.telemetry.sources import ReplaySource

    return from_core(ReplaySource(name, outputs), with_host=with_host)


class RunScope:
    """The processes of the run the live screen follows (None: no run followed).

    The app refreshes it from the launcher's process tags; the CPU source then shows that run's
    ranks instead of every rank process of this user, and panels mark the run's processes.
    """

    def __init__(self) -> None:
        self.pids: set[int] | None = None


def default_source(scope: RunScope | None = None) -> Source:
    """The best source this machine has, chosen the way `zerodeck cards` chooses (CPU ranks last).

    The choice probes NVML and PATH, so it happens on the first read, in the polling thread, not
    before the first screen is painted.
    """
    chosen: list[Source] = []

    def read() -> Frame:
        if not chosen:
            chosen.append(_choose(scope))
        return chosen[0]()

    return read


def _choose(scope: RunScope | None) -> Source:
    from zerodeck.core.telemetry.sources import CpuRankSource, make_source

    src = make_source()
    if not isinstance(src, CpuRankSource) or scope is None:
        return from_core(src)
    everyone = from_core(src)
    scoped = from_core(CpuRankSource(pids=lambda: scope.pids or set()))

    def read() -> Frame:
        return scoped() if scope.pids else everyone()

    return read


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
