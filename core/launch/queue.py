"""The persistent run queue, packed onto the free cards of this host by `zerodeck runner`.

An item holds the content-hashed snapshot of the recipe as it was when added, so editing the file
later never changes what runs; a file deleted since is a recorded failure, and the queue goes on.

Packing: every loop the runner starts each pending item, in queue order, whose cards are free
(core/launch/ledger.py decides which). Claiming the item and holding its cards and ports is one
store transaction (`Store.admit`), and finishing its run gives them back in the same transaction as
the run's end, so a runner or supervisor killed at any moment leaves nothing held for ever
(`ledger.release_stale` frees what a dead runner took, `reconcile` ends runs nobody watches), and
two runners can never hold one card.

Backfill and starvation: an item that cannot start (the head) does not stop smaller items behind it
from starting on the cards that are free, but only `max_bypass` of them; after that nothing behind
the head starts until it has, so the runs in progress drain and give it their cards. A head that
could never fit even on an empty host (cards taken by foreign processes) reserves nothing.
`serial=True` keeps one run at a time in queue order, as before the ledger.

Several servers (issue 14): each runs its own runner on one shared store and claims only the items
that fit its own cards and are not pinned to another host (`queue add --host`). A claim is a lease
(`Store.claim`: the item's next claim token, held by this host until renewed): the runner renews its
leases and its host's heartbeat (with its cards' latest state) every few seconds, makes the run under
the token (`bind_claim`), and hands the token to the supervisor in the launch spec, which writes
through `Store.fenced`. A runner killed after claiming but before making the run leaves an item whose
lease runs out: any runner puts it back in the queue (nothing ran, so it still starts exactly once).
A run whose host falls silent is recorded `lost` by whoever reconciles, never started again
(core/launch/reconcile.py: `judge_hosts`); every runner judges the other hosts as it loops.

An unexpected error in one item fails that item (and its run) with the reason; the queue goes on.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil
from zerodeck.core import paths
from zerodeck.core.errors import BadInput, OperationFailed
from zerodeck.core.launch import api, ledger, procs
from zerodeck.core.launch.environment import RUN_TAG
from zerodeck.core.launch.hostname import host_grace, this_host
from zerodeck.core.launch.reconcile import judge_hosts, reconcile
from zerodeck.core.recipe import RecipeError
from zerodeck.core.recipe.load import content_hash, load_recipe, parse_toml, to_toml
from zerodeck.core.recipe.model import Recipe
from zerodeck.core.telemetry.model import Snapshot
from zerodeck.core.telemetry.poller import Poller
from zerodeck.core.telemetry.sources import Source
from zerodeck.store.api import LeaseLost, Store
from zerodeck.store.errors import StoreError
from zerodeck.store.records import QueueRecord, RunRecord

GONE_WAIT_S = 60.0
MAX_BYPASS = 8  # items that may start ahead of a blocked head before it reserves the host
PLACEMENT_WINDOW_S = 120.0  # how long after its start a run's placement is checked
PLACEMENT_EVERY_S = 2.0
HOST_RECORD_EVERY_S = 5.0


def add(store: Store, refs: list[tuple[Recipe, Path]], host: str | None = None) -> list[int]:
    """Queue the recipes; `host` pins them to that server (only its runner claims them)."""
    ids = []
    for recipe, path in refs:
        digest = content_hash(recipe)
        store.save_snapshot(hash=digest, name=recipe.name, toml=to_toml(recipe), source_path=str(path))
        ids.append(store.enqueue(str(path), digest, host=host))
    return ids


def items(store: Store) -> list[dict[str, Any]]:
    return [it.as_dict() for it in store.queue_items()]


def _snapshot_recipe(store: Store, item: QueueRecord) -> Recipe:

    toml = store.snapshot_text(item.recipe_hash) if item.recipe_hash else None
    if toml is None:
        raise OperationFailed(f"queue item {item.id}: its recipe snapshot is missing from the store")
    return load_recipe(parse_toml(toml, item.recipe_ref), item.recipe_ref, toml, Path(item.recipe_ref).parent)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def pids_by_tag() -> dict[str, set[int]]:
    """Every live process carrying a run tag, by tag: one pass over /proc serves every run's check."""
    me = os.getpid()
    out: dict[str, set[int]] = {}
    for proc in psutil.process_iter(["pid", "status"]):
        if proc.info["pid"] == me or proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            tag = proc.environ().get(RUN_TAG)
        except (psutil.Error, OSError):
            continue
        if tag:
            out.setdefault(tag, set()).add(proc.info["pid"])
    return out


class Runner:
    def __init__(self, store: Store, on_event: Callable[[str], None] | None = None, poll: float = 0.5, *,
                 config: ledger.HostConfig | None = None, source: Source | None = None, serial: bool = False,
                 max_bypass: int = MAX_BYPASS, grace_s: float | None = None) -> None:
        self.store = store
        self.on_event = on_event or (lambda _msg: None)
        self.poll = poll
        self.config = config or ledger.HostConfig(this_host(), os.cpu_count() or 1)
        self.grace_s = host_grace() if grace_s is None else grace_s  # leases, and other hosts' silence
        self.source = source
        self.serial = serial
        self.max_bypass = max_bypass
        self.inflight: dict[int, int] = {}  # queue item id -> its run id
        self.tokens: dict[int, int] = {}  # queue item id -> the claim token this runner holds it by
        self.bypassed: dict[int, int] = {}  # blocked head item id -> items started ahead of it
        self.handled = 0
        self._poller: Poller | None = None
        self._placed_ok: set[int] = set()
        self._placement_at = -1e9
        self._host_at = -1e9
        self._peaks: dict[str, float | None] = {}
        self._waiting: set[int] = set()  # items already said to wait for cards
        self._lock_fh: Any = None

    def lock(self) -> None:

        path = paths.ensure_home() / "runner.lock"
        fh = open(path, "a+")  # noqa: SIM115  (held for the runner's lifetime)
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            other = fh.read().strip() or "?"
            fh.close()
            raise OperationFailed(f"another queue runner is active (pid {other})") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._lock_fh = fh

    def serve(self, once: bool, lock: bool = True) -> int:
        """Run queued items; with once=True stop when the queue is empty and every run it started has
        ended. Returns the items handled. `lock=False` lets several runners share one home (the
        ledger keeps them apart; the tests run two at once)."""
        if lock:
            self.lock()
        if self.source is not None:
            self._poller = Poller(self.source, lambda _snap: None, interval=2.0, with_host=False)
            self._poller.poll_once()
            self._poller.start()
        try:
            self.recover()
            while True:
                self.step()
                if once and not self.inflight and not self._pending(limit=1):
                    return self.handled
                time.sleep(self.poll)
        finally:
            if self._poller is not None:
                self._poller.stop()

    def recover(self) -> None:
        """Items left `running` by a runner that stopped: watch their run to its end, or re-queue an
        item whose run was never made (unless a live runner is making it right now)."""
        reconcile(self.store)
        ledger.release_stale(self.store, self.config.host)
        self._beat()
        starting = {h.item_id for h in self.store.holds() if h.run_id is None}
        for item in self.store.queue_items(states=["running"]):
            if item.lease_host not in (None, self.config.host):
                continue  # another host's claim: its runner, or its lease running out, settles it
            if item.run_id is None:
                if item.id in starting:
                    continue  # another runner holds cards for it and is making its run
                self.store.update_queue_item(item.id, state="pending", started_at=None)
                self.on_event(f"queue item {item.id}: re-queued (its runner stopped before starting it)")
                continue
            if item.id not in self.inflight:
                self.on_event(f"queue item {item.id}: waiting for run {item.run_id} started earlier")
                self.inflight[item.id] = item.run_id
                self.tokens[item.id] = item.claim_token

    def _pending(self, limit: int | None = None) -> list[QueueRecord]:
        """Pending items this host may claim: unpinned, or pinned to it."""
        return self.store.queue_items(states=["pending"], for_host=self.config.host, limit=limit)

    def _beat(self, view: ledger.HostView | None = None) -> None:
        """This host is alive: its row, its cards' latest state, the leases of the items it holds."""
        cards = ledger.host_records(self.config, view) if view is not None else None
        self.store.heartbeat(self.config.host, runner_pid=os.getpid(), cards=cards, lease_s=self.grace_s)

    # -- one loop ---------------------------------------------------------------------------------
    def step(self) -> int:
        """Reap ended runs, check where new ones landed, start what fits. Returns the runs started."""
        self._reap()
        ledger.release_stale(self.store, self.config.host)
        snap = self._snapshot()
        view = ledger.observe(self.config, snap)
        now = time.monotonic()
        if now - self._host_at >= min(HOST_RECORD_EVERY_S, self.grace_s / 3):  # beat well inside the grace
            self._host_at = now
            self._beat(view)
            for run_id, _what in judge_hosts(self.store, self.config.host, self.grace_s):
                self.on_event(f"run {run_id}: lost (its host stopped heartbeating)")
        if self.inflight and now - self._placement_at >= PLACEMENT_EVERY_S:
            self._placement_at = now
            self._check_placements(snap)
        return self._admit(view)

    def _snapshot(self) -> Snapshot | None:
        if self._poller is None:
            return None
        return self._poller.last_good or self._poller.latest

    def _reap(self) -> None:
        for item_id, run_id in list(self.inflight.items()):
            try:
                run = api.refresh(self.store, run_id)
            except BadInput:  # the run row is gone: nothing to wait for
                run = None
            if run is not None and not run.finished:
                continue
            del self.inflight[item_id]
            token = self.tokens.pop(item_id, None)
            self._placed_ok.discard(run_id)
            if run is None:
                self._settle(item_id, token, state="failed", reason=f"run {run_id}: gone from the store",
                             ended_at=_now())
                self.handled += 1
                continue
            self._sweep(run)
            ok = run.outcome == "succeeded"
            why = f"{run.outcome}: {run.reason or ''}".rstrip(": ")
            self._settle(item_id, token, state="done" if ok else "failed",
                         reason=None if ok else f"run {run_id}: {why}", ended_at=_now())
            self.handled += 1
            self.on_event(f"queue item {item_id}: run {run_id} {run.outcome if ok else why}")

    def _sweep(self, run: RunRecord) -> None:
        """No process of an ended run may outlive it on its cards (its supervisor swept already;
        a serial runner waits as it always did before starting the next run)."""
        tag = run.workdir
        left = procs.wait_gone(tag, GONE_WAIT_S) if self.serial else procs.tagged_pids(tag)
        if left:
            procs.terminate_run(tag, None, grace=5.0)

    def _peak_mb(self, recipe: Recipe) -> float | None:
        digest = content_hash(recipe)
        if digest not in self._peaks:
            gib = api.predicted_peak_gib(recipe)
            self._peaks[digest] = gib * 1024 if gib is not None else None
        return self._peaks[digest]

    def _admit(self, view: ledger.HostView) -> int:
        if self.serial and self.inflight:
            return 0
        pending = self._pending()
        if not pending:
            return 0
        busy: dict[tuple[str, int], int | None] = ledger.busy_cards(self.store, self.config)
        started = 0
        head: int | None = None
        for item in pending:
            if self.serial and started:
                break
            try:
                recipe = _snapshot_recipe(self.store, item)
            except (RecipeError, OperationFailed) as exc:
                self._fail_unstarted(item, str(exc))
                continue
            device, need = recipe.hardware.device, recipe.hardware.cards
            wanted = recipe.hardware.devices
            offered = [c.index for c in view.cards.get(view.kind_for(device), [])]
            never = ledger.too_big(device, need, wanted, offered)
            if never is not None:
                self._fail_unstarted(item, never)
                continue
            if device != "cpu" and self.source is not None and not view.cards.get(ledger.CARD):
                cards = None  # no reading of the cards yet: nothing is known to be free
            else:
                cards = ledger.choose_cards(view, busy, device, need, self._peak_mb(recipe), wanted)
            if cards is None:
                if item.id not in self._waiting:
                    self._waiting.add(item.id)
                    self.on_event(f"queue item {item.id}: waiting for {need} free {device} card(s)")
                if head is None and self._could_ever_fit(view, device, need):
                    head = item.id
                if self.serial:
                    break
                continue
            if head is not None and self.bypassed.get(head, 0) >= self.max_bypass:
                break  # the head reserves the host: what runs drains, then it starts
            if self._start(item, recipe, cards):
                started += 1
                peak = self._peak_mb(recipe)
                if device == "cpu" and peak is not None and view.ram_available_mb is not None:
                    # Its ranks have allocated nothing yet: what they will take is spoken for (task-spooler #59).
                    view.ram_available_mb -= peak * need
                kind = view.kind_for(device)
                for c in cards:
                    busy[(kind, c)] = None
                self.bypassed.pop(item.id, None)
                if head is not None:
                    self.bypassed[head] = self.bypassed.get(head, 0) + 1
        return started

    @staticmethod
    def _could_ever_fit(view: ledger.HostView, device: str, need: int) -> bool:
        return sum(1 for c in view.cards.get(view.kind_for(device), []) if not c.foreign_pids) >= need

    def _fail_unstarted(self, item: QueueRecord, reason: str) -> None:
        """An item that can never start here is failed, claimed first so two runners report it once."""
        token = self.store.claim(item.id, self.config.host, [], os.getpid(), lease_s=self.grace_s)
        if token is not None:
            self._settle(item.id, token, state="failed", reason=reason, ended_at=_now())
            self.handled += 1
            self.on_event(f"queue item {item.id}: failed: {reason}")

    def _start(self, item: QueueRecord, recipe: Recipe, cards: list[int]) -> bool:
        """Hold the cards and ports and claim the item in one transaction, then make and launch the run.
        False when another runner was quicker (the next loop looks again)."""
        host = self.config.host
        fixed = recipe.launch.options.get("master_port")
        holds, placement = ledger.placement_holds(self.store, self.config, recipe.hardware.device, cards,
                                                  int(fixed) if isinstance(fixed, int) else None)
        port, hccl_base, hccl_ports = placement.master_port, placement.hccl_base_port, placement.hccl_ports
        token = self.store.claim(item.id, host, holds, os.getpid(), lease_s=self.grace_s)
        if token is None:
            return False
        placement = dataclasses.replace(placement, claim_token=token)
        run_id: int | None = None
        try:
            run_id = api.create_run(self.store, recipe, Path(item.recipe_ref))
            try:
                self.store.bind_claim(item.id, token, run_id, host=host, card_ids=cards, master_port=port,
                                      hccl_base_port=hccl_base, hccl_ports=hccl_ports)
            except LeaseLost as exc:
                # This runner stalled past its lease and the item went back to the queue: its run never starts.
                api.record_failed(self.store, run_id, f"not started: {exc}")
                self.on_event(f"queue item {item.id}: lease lost before its run started ({exc})")
                return True
            self.inflight[item.id] = run_id
            self.tokens[item.id] = token
            if not Path(item.recipe_ref).is_file():
                reason = f"recipe file {item.recipe_ref} no longer exists"
                api.record_failed(self.store, run_id, reason)
                self.on_event(f"queue item {item.id}: run {run_id} failed: {reason}")
                return True
            where = ",".join(map(str, cards))
            self.on_event(f"queue item {item.id}: run {run_id} {recipe.name} starting on cards {where}, "
                          f"port {port}")
            try:
                api.launch_recorded(self.store, run_id, recipe, Path(item.recipe_ref), placement)
            except OperationFailed as exc:
                self.on_event(f"queue item {item.id}: {exc}")
        except StoreError:
            raise
        except Exception as exc:
            self._fail_started(item.id, run_id, api.internal_error(exc))
        return True

    def _fail_started(self, item_id: int, run_id: int | None, reason: str) -> None:
        """An unexpected error fails this item and its run (giving back what they held); the queue goes on."""
        self.inflight.pop(item_id, None)
        token = self.tokens.pop(item_id, None)
        if run_id is not None:
            run = self.store.run(run_id)
            if run is not None and not run.finished:
                api.record_failed(self.store, run_id, reason)
        prefix = f"run {run_id}: failed: " if run_id is not None else "failed: "
        self._settle(item_id, token, state="failed", reason=prefix + reason, ended_at=_now())
        self.handled += 1
        self.on_event(f"queue item {item_id}: {prefix}{reason}")

    def _settle(self, item_id: int, token: int | None, **fields: Any) -> None:
        """Record an item's end as the holder of its claim; a claim taken over meanwhile (its run was
        judged lost, its lease expired) is the new holder's to record: this runner says so and stops."""
        if token is None:  # an item claimed before claim tokens existed
            self.store.update_queue_item(item_id, **fields)
            return
        try:
            self.store.finish_item(item_id, token, **fields)
        except LeaseLost as exc:
            self.on_event(f"queue item {item_id}: not recorded: {exc}")

    # -- placement ----------------------------------------------------------------------------------
    def _check_placements(self, snap: Snapshot | None) -> None:
        """A run whose processes sit on cards it was not given is reported: a line on the run
        (`placement`, in `show`), in its log and among the runner's events."""
        now = _now()
        runs = [r for r in self.store.runs(ids=list(self.inflight.values()))
                if r.status == "running" and r.id not in self._placed_ok and r.workdir
                and r.started_at is not None and (now - r.started_at).total_seconds() < PLACEMENT_WINDOW_S]
        if not runs:
            return
        tags = pids_by_tag()
        device_cards = ledger.device_process_cards(snap)
        for run in runs:
            tagged = tags.get(str(run.workdir), set())
            where = ledger.cpu_rank_cards(tagged) if run.device == "cpu" else device_cards
            problem = ledger.misplaced(run, tagged, where)
            if problem is None:
                continue
            self._placed_ok.add(run.id)  # reported once
            self.store.update_run(run.id, placement=problem)
            if run.log_path:
                try:
                    with open(run.log_path, "a") as fh:
                        fh.write(f"# zerodeck: placement: {problem}\n")
                except OSError:
                    pass
            self.on_event(f"run {run.id}: placement: {problem}")
