"""Every launch takes its cards, MASTER_PORT and HCCL port block through the card ledger, here.

The queue runner holds what it starts (`Store.admit`), and a run started any other way (`zerodeck
run`, `probe`, `resume`, the supervisor's automatic resume, the TUI) goes through `choose` and
`take`: the same rules (core/launch/ledger.py: allowed cards, not held, no foreign process, free
memory for the planner's peak, `hardware.devices` when the recipe pins them) and the same store
constraint, so two runs never share a card or a port whoever started them.

A direct run whose cards are taken is refused with one line naming who holds them, and nothing
starts: a headless command should fail fast and honestly rather than wait unseen; `zerodeck queue
add` is the way to wait for cards.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zerodeck.core.errors import BadInput, OperationFailed
from zerodeck.core.launch import ledger
from zerodeck.core.launch.ledger import CARD, CPU, PORT, CardView, HostConfig, HostView, Placement
from zerodeck.core.recipe.model import Recipe
from zerodeck.core.telemetry.model import Snapshot
from zerodeck.store.api import Store

if TYPE_CHECKING:
    from zerodeck.core.telemetry.sources import Source

READ_TIMEOUT_S = 5.0
UNSEEN_CARDS = 1024  # indexes offered when no tool can read this host's cards (the ledger alone decides)
TRIES = 3  # another launch may take a chosen card or port first: look again this often


@dataclass(frozen=True)
class LocalHost:
    """This host as a launch sees it: the ledger's configuration and the telemetry source of its
    cards (None without npu-smi / NVML). Made once at the process's entry (`local_host`)."""

    config: HostConfig
    source: Source | None = None

    def read(self) -> Snapshot | None:
        return self.source.read(READ_TIMEOUT_S) if self.source is not None else None


def local_host(env: Mapping[str, str]) -> LocalHost:
    """ZERODECK_CARDS, ZERODECK_CPU_CARDS (a bad value is BadInput naming the variable) and the card
    source of this host, if any."""
    from zerodeck.core.launch.environment import versions
    from zerodeck.core.launch.hostname import name_from_env
    from zerodeck.core.telemetry.sources import availability, make_source

    why = availability()
    name = next((n for n in ("npu-smi", "nvidia") if why.get(n) is None), None)
    cann = versions().get("cann") if name == "npu-smi" else None
    return LocalHost(HostConfig.from_env(env, name_from_env(env), cann), make_source(name) if name else None)


def offered(host: LocalHost, device: str) -> HostView:
    """The host's cards now. Where no tool reads the device cards (or the read failed) the ledger
    alone decides which are free, from the allowed indexes."""
    view = ledger.observe(host.config, host.read() if device != "cpu" else None)
    if device != "cpu" and not view.cards.get(CARD):
        view.cards[CARD] = [CardView(i, CARD) for i in range(UNSEEN_CARDS) if host.config.allows(i)]
    return view


def choose(store: Store, host: LocalHost, recipe: Recipe, peak_mb: float | None) -> list[int]:
    """The cards a run of `recipe` gets now (its pinned `hardware.devices`, else the lowest free).

    BadInput when this host can never offer them; OperationFailed, one line naming who holds them,
    when they are taken now."""
    hw = recipe.hardware
    ledger.release_stale(store, host.config.host)
    view = offered(host, hw.device)
    have = [c.index for c in view.cards.get(view.kind_for(hw.device), [])]
    never = ledger.too_big(hw.device, hw.cards, hw.devices, have)
    if never is not None:
        raise BadInput(never)
    busy = ledger.busy_cards(store, host.config)
    cards = ledger.choose_cards(view, busy, hw.device, hw.cards, peak_mb, hw.devices)
    if cards is None:
        raise OperationFailed(refusal(store, view, busy, hw.device, hw.cards, peak_mb, hw.devices))
    return cards


def take(store: Store, run_id: int, recipe: Recipe, host: LocalHost, peak_mb: float | None,
         cards: Sequence[int] | None = None) -> Placement:
    """Hold cards (those given, else chosen now), a MASTER_PORT and on Ascend an HCCL block for the
    recorded run `run_id`, and record them on it, in one transaction. OperationFailed when they are
    taken; `finish_run` gives them back."""
    hw = recipe.hardware
    fixed = recipe.launch.options.get("master_port")
    port = int(fixed) if isinstance(fixed, int) else None
    for _ in range(TRIES):
        chosen = list(cards) if cards is not None else choose(store, host, recipe, peak_mb)
        cards = None  # a second look chooses afresh
        if port is not None:
            holder = next((h for h in store.holds(host.config.host) if h.kind == PORT and h.ident == port), None)
            if holder is not None:
                who = holder_name(store, holder.run_id)
                raise OperationFailed(f"launch.options.master_port {port} is held by {who}")
        holds, placement = ledger.placement_holds(store, host.config, hw.device, chosen, port)
        if store.hold_for_run(run_id, host.config.host, holds, os.getpid(), host=placement.host,
                              card_ids=list(placement.card_ids), master_port=placement.master_port,
                              hccl_base_port=placement.hccl_base_port, hccl_ports=placement.hccl_ports):
            return placement
    raise OperationFailed(f"other launches kept taking the free {hw.device} cards; tried {TRIES} times")


def holder_name(store: Store, run_id: int | None) -> str:
    if run_id is None:
        return "a queue runner starting an item"
    run = store.run(run_id)
    return f"run {run_id} ({run.name})" if run is not None else f"run {run_id}"


def _cards(indexes: Sequence[int]) -> str:
    word = "cards" if len(indexes) > 1 else "card"
    return f"{word} {','.join(map(str, indexes))} {'are' if len(indexes) > 1 else 'is'}"


def refusal(store: Store, view: HostView, busy: Mapping[tuple[str, int], int | None], device: str, need: int,
            peak_mb: float | None, wanted: Sequence[int] | None) -> str:
    """One line saying why the run gets no cards: who holds them, foreign processes, short memory."""
    kind = view.kind_for(device)
    cards = [c for c in view.cards.get(kind, []) if not wanted or c.index in wanted]
    held: dict[int | None, list[int]] = {}
    parts: list[str] = []
    free = 0
    for c in cards:
        if (kind, c.index) in busy:
            held.setdefault(busy[(kind, c.index)], []).append(c.index)
        elif c.foreign_pids:
            parts.append(f"card {c.index} is used by processes zerodeck did not start "
                         f"({','.join(map(str, c.foreign_pids))})")
        elif peak_mb is not None and kind != CPU and c.free_mb is not None and c.free_mb < peak_mb:
            parts.append(f"card {c.index} has {c.free_mb / 1024:.1f} GiB free, the run needs {peak_mb / 1024:.1f} GiB")
        else:
            free += 1
    parts = [f"{_cards(ix)} held by {holder_name(store, rid)}" for rid, ix in held.items()] + parts
    if kind == CPU and peak_mb is not None and view.ram_available_mb is not None \
            and peak_mb * need > view.ram_available_mb:
        parts.append(f"{need} CPU ranks need {peak_mb * need / 1024:.1f} GiB of RAM, "
                     f"{view.ram_available_mb / 1024:.1f} GiB is available")
    head = "" if wanted else f"{need} free {device} card(s) needed, {free} free: "
    return head + "; ".join(parts) + " (`zerodeck queue add` waits for free cards)"
