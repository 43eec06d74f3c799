"""The card ledger's rules: which cards of this host may be given to a run, and checking where a run landed.

The store keeps the ledger itself (`ledger_hold` rows, unique per host, kind and index; see
`Store.admit`); this module decides what to ask it for. A card is given only when no run holds it,
no run started outside the queue sits on it, no process zerodeck did not start uses it (foreign), it
is allowed by `ZERODECK_CARDS`, and its live free memory takes the planner's per-card peak. Ports are
held the same way, so two runs on one host never share a MASTER_PORT or an HCCL port block.

On a machine without accelerators `ZERODECK_CPU_CARDS` virtual cards (default: the number of cores)
stand in for cards; rank r of a CPU run "sits on" the r-th card it was given (`ZERODECK_VISIBLE_CARDS`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import psutil
from zerodeck.core.errors import BadInput
from zerodeck.core.launch.environment import RUN_TAG, VISIBLE_CARDS
from zerodeck.core.launch.ports import pick_port
from zerodeck.core.telemetry.model import Snapshot
from zerodeck.store.api import Store
from zerodeck.store.records import HostCardRecord, RunRecord

CARDS_VAR = "ZERODECK_CARDS"
CPU_CARDS_VAR = "ZERODECK_CPU_CARDS"
# Hold kinds: a device card, a virtual CPU card, a MASTER_PORT, a 16-port HCCL slot.
CARD, CPU, PORT, HCCL = "card", "cpu", "port", "hccl"
# HCCL's host ports start at 60000 by default (60000-60015 for one job, LLaMA-Factory #9330); each run
# gets its own block of 16 ports per card (32 for CANN >= 8.5) from slots of 16 above that.
HCCL_FIRST_PORT = 60000
HCCL_SLOT = 16
HCCL_SLOTS = 320  # 60000-65119


def parse_cards(text: str, var: str = CARDS_VAR) -> tuple[int, ...]:
    """`0-5`, `0,2,4`, `0-3,6`: the card indexes, sorted; BadInput naming the variable otherwise."""
    out: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise BadInput(f"{var}={text!r}: expected card indexes such as 0-5 or 0,2,4")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo or hi > 1023:
            raise BadInput(f"{var}={text!r}: bad range {part!r}")
        out.update(range(lo, hi + 1))
    return tuple(sorted(out))


def hccl_ports_per_card(cann: str | None) -> int:
    """CANN 8.5 and later use 32 host ports per card; earlier ones 16."""
    m = re.match(r"(\d+)\.(\d+)", cann or "")
    return 32 if m and (int(m.group(1)), int(m.group(2))) >= (8, 5) else 16


@dataclass(frozen=True)
class HostConfig:
    """What this host offers, read once at the process's entry (`from_env`)."""

    host: str
    cpu_cards: int
    allowed: tuple[int, ...] | None = None  # ZERODECK_CARDS; None: every card
    hccl_per_card: int = 16

    @classmethod
    def from_env(cls, env: Mapping[str, str], host: str, cann: str | None = None) -> HostConfig:
        allowed = parse_cards(env[CARDS_VAR]) if env.get(CARDS_VAR, "").strip() else None
        raw = env.get(CPU_CARDS_VAR, "").strip()
        if raw:
            if not raw.isdigit() or not 1 <= int(raw) <= 1024:
                raise BadInput(f"{CPU_CARDS_VAR}={raw!r}: expected a number of virtual cards from 1 to 1024")
            cpu = int(raw)
        else:
            cpu = os.cpu_count() or 1
        return cls(host, cpu, allowed, hccl_ports_per_card(cann))

    def allows(self, index: int) -> bool:
        return self.allowed is None or index in self.allowed


@dataclass
class CardView:
    """One card of this host as the runner sees it now."""

    index: int
    kind: str  # CARD | CPU
    memory_used_mb: float | None = None
    memory_total_mb: float | None = None
    foreign_pids: tuple[int, ...] = ()
    run_id: int | None = None  # the run holding it (ledger or a run started outside the queue)

    @property
    def free_mb(self) -> float | None:
        if self.memory_used_mb is None or self.memory_total_mb is None:
            return None
        return self.memory_total_mb - self.memory_used_mb


@dataclass
class HostView:
    cards: dict[str, list[CardView]] = field(default_factory=dict)  # kind -> cards
    ram_available_mb: float | None = None

    def kind_for(self, device: str) -> str:
        return CPU if device == "cpu" else CARD


def zerodeck_pids() -> set[int]:
    """Live processes carrying any zerodeck run's tag: what is not among them on a card is foreign."""
    out: set[int] = set()
    for proc in psutil.process_iter(["pid"]):
        try:
            if RUN_TAG in proc.environ():
                out.add(proc.pid)
        except (psutil.Error, OSError):
            continue
    return out


def card_index_map(snap: Snapshot) -> dict[int, int]:
    """npu-smi NPU id / GPU index -> the index visible-device lists use (the logical id where known)."""
    return {c.npu: (c.logical_id if c.logical_id is not None else c.npu) for c in snap.cards if c.npu is not None}


def device_process_cards(snap: Snapshot | None) -> dict[int, set[int]]:
    """pid -> the cards the per-process table shows it on."""
    out: dict[int, set[int]] = {}
    if snap is None:
        return out
    index = card_index_map(snap)
    for p in snap.processes:
        if p.pid is not None and p.npu is not None:
            out.setdefault(p.pid, set()).add(index.get(p.npu, p.npu))
    return out


def observe(config: HostConfig, snap: Snapshot | None, ours: Callable[[], set[int]] = zerodeck_pids) -> HostView:
    """This host's cards now: virtual CPU cards always, device cards from a telemetry snapshot."""
    view = HostView()
    view.cards[CPU] = [CardView(i, CPU) for i in range(config.cpu_cards) if config.allows(i)]
    if snap is not None and snap.source in ("npu-smi", "nvidia") and snap.ok:
        mine = ours() if snap.processes else set()
        on_card: dict[int, list[int]] = {}
        for pid, cards in device_process_cards(snap).items():
            if pid not in mine:
                for index in cards:
                    on_card.setdefault(index, []).append(pid)
        seen: set[int] = set()
        for c in snap.cards:
            if c.npu is None:
                continue
            idx = c.logical_id if c.logical_id is not None else c.npu
            if idx in seen or not config.allows(idx):
                continue  # a multi-die NPU is one card to the ledger: its first die speaks for it
            seen.add(idx)
            view.cards[CARD] = [*view.cards.get(CARD, []), CardView(
                idx, CARD, c.device_used_mb, c.device_total_mb, tuple(sorted(on_card.get(idx, []))))]
    try:
        view.ram_available_mb = psutil.virtual_memory().available / 2**20
    except Exception:  # /proc unreadable: admission then does not look at RAM
        view.ram_available_mb = None
    return view


def busy_cards(store: Store, config: HostConfig) -> dict[tuple[str, int], int | None]:
    """(kind, index) -> run id of every card of this host held in the ledger or sat on by an active
    run started outside the queue (those hold no ledger rows)."""
    busy: dict[tuple[str, int], int | None] = {}
    for h in store.holds(config.host):
        if h.kind in (CARD, CPU):
            busy[(h.kind, h.ident)] = h.run_id
    for run_id, device, card_ids in store.active_placements(config.host):
        for c in card_ids:
            busy.setdefault((CPU if device == "cpu" else CARD, c), run_id)
    return busy


def choose_cards(view: HostView, busy: Mapping[tuple[str, int], int | None], device: str, need: int,
                 peak_mb: float | None, wanted: Sequence[int] | None = None) -> list[int] | None:
    """The cards to give a run needing `need` cards of `peak_mb` each (lowest indexes first), or None.

    A CPU run's virtual cards share the host's RAM: all its ranks together must fit what is available."""
    kind = view.kind_for(device)
    cards = view.cards.get(kind, [])
    ok = [c.index for c in cards if (kind, c.index) not in busy and not c.foreign_pids
          and (peak_mb is None or kind == CPU or c.free_mb is None or c.free_mb >= peak_mb)]
    if kind == CPU and peak_mb is not None and view.ram_available_mb is not None \
            and peak_mb * need > view.ram_available_mb:
        return None
    if wanted:
        return list(wanted) if all(w in ok for w in wanted) else None
    return ok[:need] if len(ok) >= need else None


def capacity(view: HostView, device: str) -> int:
    return len(view.cards.get(view.kind_for(device), []))


def too_big(device: str, need: int, wanted: Sequence[int] | None, offered: Sequence[int]) -> str | None:
    """Why a run can never start on this host's offered cards (too many, or pinned elsewhere), else None."""
    if need <= len(offered) and (not wanted or set(wanted) <= set(offered)):
        return None
    which = "virtual CPU cards (ZERODECK_CPU_CARDS)" if device == "cpu" else f"{device} cards"
    have = ",".join(map(str, offered)) or "none"
    if wanted:
        return f"hardware.devices {list(wanted)}: not among this host's {which} ({have}; ZERODECK_CARDS limits them)"
    return f"hardware.cards = {need}: this host offers {len(offered)} {which} ({have})"


@dataclass(frozen=True)
class Placement:
    """Where the ledger put a run: its cards on `host`, its MASTER_PORT and, on Ascend, its HCCL port
    block; all held in the store until the run finishes."""

    host: str
    card_ids: tuple[int, ...]
    master_port: int
    hccl_base_port: int | None = None
    hccl_ports: int | None = None
    claim_token: int | None = None  # the queue claim it was made by: every write of the run carries it


def placement_holds(store: Store, config: HostConfig, device: str, cards: Sequence[int],
                    fixed_port: int | None = None) -> tuple[list[tuple[str, int]], Placement]:
    """The ledger rows (kind, ident) a run on `cards` takes, and the placement they stand for: its
    cards, a MASTER_PORT no active or held run has (the recipe's own when it fixes one) and, on
    Ascend, consecutive free HCCL slots. The queue runner and a direct launch both ask this."""
    kind = CPU if device == "cpu" else CARD
    port = fixed_port if fixed_port is not None else pick_port(store.active_ports() | held_ports(store, config.host))
    holds = [(kind, c) for c in cards] + [(PORT, port)]
    hccl_base = hccl_ports = None
    if device == "npu":
        slots = hccl_slots(store, config, len(cards))
        holds += [(HCCL, s) for s in slots]
        hccl_base, hccl_ports = HCCL_FIRST_PORT + slots[0] * HCCL_SLOT, len(slots) * HCCL_SLOT
    return holds, Placement(config.host, tuple(cards), port, hccl_base, hccl_ports)


def hccl_slots(store: Store, config: HostConfig, cards: int) -> list[int]:
    """Consecutive free 16-port HCCL slots for a run of `cards` cards (held like cards, so unique)."""
    need = max(1, cards * config.hccl_per_card // HCCL_SLOT)
    taken = {h.ident for h in store.holds(config.host) if h.kind == HCCL}
    for base, ports in store.active_hccl_blocks():  # runs started outside the queue
        first = (base - HCCL_FIRST_PORT) // HCCL_SLOT
        taken.update(range(first, first + -(-ports // HCCL_SLOT)))
    for start in range(0, HCCL_SLOTS - need + 1):
        if not taken.intersection(range(start, start + need)):
            return list(range(start, start + need))
    raise OSError(f"no free block of {need * HCCL_SLOT} HCCL ports above {HCCL_FIRST_PORT}")


def held_ports(store: Store, host: str) -> set[int]:
    return {h.ident for h in store.holds(host) if h.kind == PORT}


def release_stale(store: Store, host: str, alive: Callable[[int], bool] | None = None) -> int:
    """Give back holds nobody can use any more: their run finished or is gone, their queue item is
    no longer being started, or (on this host) the runner that took them died before binding a run."""
    alive = alive or pid_alive
    drop = []
    for hold_id, hold_host, holder, run_status, item_state, run_id in store.hold_states():
        if run_id is not None:
            if run_status is None or run_status == "finished":
                drop.append(hold_id)
        elif item_state != "running" or (hold_host == host and (holder is None or not alive(holder))):
            drop.append(hold_id)
    return store.drop_holds(drop)


def pid_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def cpu_rank_cards(pids: Iterable[int]) -> dict[int, set[int]]:
    """pid -> the virtual card a CPU rank sits on: its LOCAL_RANK-th entry of ZERODECK_VISIBLE_CARDS."""
    out: dict[int, set[int]] = {}
    for pid in pids:
        try:
            env = psutil.Process(pid).environ()
        except (psutil.Error, OSError):
            continue
        rank, visible = env.get("LOCAL_RANK") or env.get("RANK"), env.get(VISIBLE_CARDS)
        if rank is None or not rank.isdigit() or not visible:
            continue
        try:
            cards = [int(x) for x in visible.split(",")]
        except ValueError:
            continue
        if int(rank) < len(cards):
            out[pid] = {cards[int(rank)]}
    return out


def misplaced(run: RunRecord, tagged: set[int], process_cards: Mapping[int, set[int]]) -> str | None:
    """One line when a process of the run sits on a card it was not given, else None."""
    given = set(run.card_ids)
    wrong = sorted((pid, sorted(cards - given)) for pid, cards in process_cards.items()
                   if pid in tagged and cards - given)
    if not wrong or not given:
        return None
    where = ", ".join(f"pid {pid} on card {','.join(map(str, cards))}" for pid, cards in wrong)
    return f"processes on cards not given to the run (given {','.join(map(str, sorted(given)))}): {where}"


def host_records(config: HostConfig, view: HostView) -> list[HostCardRecord]:
    """The host's cards as `zerodeck hosts` stores them: device cards where there are any, else the
    virtual CPU cards."""
    kind = CARD if view.cards.get(CARD) else CPU
    return [HostCardRecord(config.host, c.index, c.memory_used_mb, c.memory_total_mb, c.foreign_pids)
            for c in view.cards.get(kind, [])]


def hosts_json(store: Store, grace_s: float, now: datetime | None = None) -> list[dict[str, Any]]:
    """`zerodeck hosts --json` (a command-line contract): every host's cards and who holds them, with
    (issue 14) its last heartbeat, whether it is stale (silent past `grace_s`) and its runner's pid."""
    now = now or datetime.now(timezone.utc)
    holders: dict[tuple[str, str, int], int | None] = {
        (h.host, h.kind, h.ident): h.run_id for h in store.holds()}
    names = {r.id: r.name for r in store.runs(ids=sorted({i for i in holders.values() if i is not None}))} \
        if holders else {}
    beats = {b.name: b for b in store.hosts()}
    out: dict[str, dict[str, Any]] = {}

    def entry_of(host: str) -> dict[str, Any]:
        if host not in out:
            beat = beats.get(host)
            last = beat.last_heartbeat if beat else None
            out[host] = {"host": host, "seen_at": None, "cards": [],
                         "last_heartbeat": last.isoformat() if last else None,
                         "stale": last is None or (now - last).total_seconds() > grace_s,
                         "runner_pid": beat.runner_pid if beat else None}
        return out[host]

    for rec in store.host_cards():
        entry = entry_of(rec.host)
        seen = rec.seen_at.isoformat() if rec.seen_at else None
        if seen and (entry["seen_at"] is None or seen > str(entry["seen_at"])):
            entry["seen_at"] = seen
        run_id = holders.get((rec.host, CARD, rec.card), holders.get((rec.host, CPU, rec.card)))
        entry["cards"].append({"index": rec.card, "run_id": run_id, "foreign_pids": list(rec.foreign_pids),
                               "memory_used_mb": rec.memory_used_mb, "memory_total_mb": rec.memory_total_mb,
                               "run_name": names.get(run_id) if run_id is not None else None})
    for name in beats:  # a host whose supervisors beat but whose runner never reported cards
        entry_of(name)
    return [out[k] for k in sorted(out)]
