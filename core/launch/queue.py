"""The persistent run queue: recipes run one after another by `zerodeck runner`.

An item holds the content-hashed snapshot of the recipe as it was when added, so editing the file
later never changes what runs; a file deleted since is a recorded failure, and the queue goes on.
Claiming is atomic in the store and the item points at its run before the run starts, so a
runner killed at any moment neither loses nor repeats an item when it starts again. One runner
at a time (a lock file), and each run's processes must be gone before the next one starts. An
unexpected error in one item fails that item (and its run) with the reason; the queue goes on.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from zerodeck.core import paths
from zerodeck.core.errors import OperationFailed
from zerodeck.core.launch import api, procs
from zerodeck.core.launch.reconcile import reconcile
from zerodeck.core.recipe import RecipeError
from zerodeck.core.recipe.load import content_hash, load_recipe, parse_toml, to_toml
from zerodeck.core.recipe.model import Recipe
from zerodeck.store.api import Store
from zerodeck.store.errors import StoreError
from zerodeck.store.records import QueueRecord

GONE_WAIT_S = 60.0


def add(store: Store, refs: list[tuple[Recipe, Path]]) -> list[int]:

    ids = []
    for recipe, path in refs:
        digest = content_hash(recipe)
        store.save_snapshot(hash=digest, name=recipe.name, toml=to_toml(recipe), source_path=str(path))
        ids.append(store.enqueue(str(path), digest))
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


class Runner:
    def __init__(self, store: Store, on_event: Callable[[str], None] | None = None, poll: float = 2.0) -> None:
        self.store = store
        self.on_event = on_event or (lambda _msg: None)
        self.poll = poll
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

    def serve(self, once: bool) -> int:
        """Run queued items; with once=True stop when the queue is empty. Returns items handled."""
        self.lock()
        handled = self.recover()
        while True:
            item = self.store.claim_next()
            if item is None:
                if once:
                    return handled
                time.sleep(self.poll)
                continue
            self.process_safely(item)
            handled += 1

    def recover(self) -> int:
        """Items left `running` by a runner that died: finish waiting for their run, or re-queue."""
        handled = 0
        reconcile(self.store)
        for item in self.store.queue_items(states=["running"]):
            if item.run_id is None:
                self.store.update_queue_item(item.id, state="pending", started_at=None)
                self.on_event(f"queue item {item.id}: re-queued (its runner stopped before starting it)")
                continue
            self.on_event(f"queue item {item.id}: waiting for run {item.run_id} started earlier")
            self._await(item.id, item.run_id)
            handled += 1
        return handled

    def process_safely(self, item: QueueRecord) -> None:
        """`process`, but an unexpected error fails this item (and its run) and the queue goes on.
        The store's own errors still end the runner: nothing can be recorded without it."""

        try:
            self.process(item)
        except StoreError:
            raise
        except Exception as exc:
            reason = api.internal_error(exc)
            current = self.store.queue_item(item.id)
            run_id = current.run_id if current is not None else None
            if run_id is not None:
                run = self.store.run(run_id)
                if run is not None and not run.finished:
                    api.record_failed(self.store, run_id, reason)
            prefix = f"run {run_id}: failed: " if run_id is not None else "failed: "
            self.store.update_queue_item(item.id, state="failed", reason=prefix + reason, ended_at=_now())
            self.on_event(f"queue item {item.id}: {prefix}{reason}")

    def process(self, item: QueueRecord) -> None:

        try:
            recipe = _snapshot_recipe(self.store, item)
        except (RecipeError, OperationFailed) as exc:
            self.store.update_queue_item(item.id, state="failed", reason=str(exc), ended_at=_now())
            self.on_event(f"queue item {item.id}: failed: {exc}")
            return
        run_id = api.create_run(self.store, recipe, Path(item.recipe_ref))
        self.store.update_queue_item(item.id, run_id=run_id)
        if not Path(item.recipe_ref).is_file():
            reason = f"recipe file {item.recipe_ref} no longer exists"
            api.record_failed(self.store, run_id, reason)
            self.store.update_queue_item(item.id, state="failed", reason=reason, ended_at=_now())
            self.on_event(f"queue item {item.id}: run {run_id} failed: {reason}")
            return
        self.on_event(f"queue item {item.id}: run {run_id} {recipe.name} starting")
        try:
            api.launch_recorded(self.store, run_id, recipe, Path(item.recipe_ref))
        except OperationFailed as exc:
            self.on_event(f"queue item {item.id}: {exc}")
        self._await(item.id, run_id)

    def _await(self, item_id: int, run_id: int) -> None:
        final = api.wait_run(self.store, run_id, poll=1.0)
        tag = final.workdir
        left = procs.wait_gone(tag, GONE_WAIT_S)
        if left:
            procs.terminate_run(tag, None, grace=5.0)
        ok = final.outcome == "succeeded"
        self.store.update_queue_item(
            item_id, state="done" if ok else "failed",
            reason=None if ok else f"run {run_id}: {final.outcome}: {final.reason or ''}".rstrip(": "),
            ended_at=_now())
        self.on_event(f"queue item {item_id}: run {run_id} {final.outcome}")
