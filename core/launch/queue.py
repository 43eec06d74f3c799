"""The persistent run queue: recipes run one after another by `zerodeck runner`.

An item holds the content-hashed snapshot of the recipe as it was when added, so editing the file
later never changes what runs; a file deleted since is a recorded failure, and the queue goes on.
Claiming is atomic in the store and the item points at its run before the run starts, so a
runner killed at any moment neither loses nor repeats an item when it starts again. One runner
at a time (a lock file), and each run's processes must be gone before the next one starts.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zerodeck.core.errors import OperationFailed
from zerodeck.core.recipe.model import Recipe

GONE_WAIT_S = 60.0


def add(refs: list[tuple[Recipe, Path]]) -> list[int]:
    from zerodeck.core.recipe.load import content_hash, to_toml
    from zerodeck.store.engine import open_store
    from zerodeck.store.queries import enqueue, save_snapshot

    ids = []
    with open_store() as session:
        for recipe, path in refs:
            digest = content_hash(recipe)
            save_snapshot(session, hash=digest, name=recipe.name, toml=to_toml(recipe), source_path=str(path))
            item = enqueue(session, str(path), digest)
            assert item.id is not None
            ids.append(item.id)
    return ids


def items() -> list[dict[str, Any]]:
    from zerodeck.store.engine import open_store
    from zerodeck.store.models import RecipeSnapshot
    from zerodeck.store.queries import queue_items

    with open_store() as session:
        out = []
        for it in queue_items(session):
            snap = session.get(RecipeSnapshot, it.recipe_hash) if it.recipe_hash else None
            out.append({"id": it.id, "recipe": snap.name if snap else None, "recipe_ref": it.recipe_ref,
                        "state": it.state, "run_id": it.run_id, "reason": it.reason,
                        "added_at": it.added_at, "started_at": it.started_at, "ended_at": it.ended_at})
        return out


def _snapshot_recipe(session: Any, item: Any) -> Recipe:
    from zerodeck.core.recipe.load import load_recipe, parse_toml
    from zerodeck.store.models import RecipeSnapshot

    snap = session.get(RecipeSnapshot, item.recipe_hash)
    if snap is None:
        raise OperationFailed(f"queue item {item.id}: its recipe snapshot is missing from the store")
    return load_recipe(parse_toml(snap.toml, item.recipe_ref), item.recipe_ref, snap.toml,
                       Path(item.recipe_ref).parent)


def run_tag(session: Any, run_id: int) -> str | None:
    from zerodeck.store.queries import get_run

    session.expire_all()
    run = get_run(session, run_id)
    return run.workdir if run else None


class Runner:
    def __init__(self, on_event: Callable[[str], None] | None = None, poll: float = 2.0) -> None:
        self.on_event = on_event or (lambda _msg: None)
        self.poll = poll
        self._lock_fh: Any = None

    def lock(self) -> None:
        from zerodeck.core import paths

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
        from zerodeck.store.engine import open_store
        from zerodeck.store.queries import claim_next

        self.lock()
        handled = self.recover()
        while True:
            with open_store() as session:
                item = claim_next(session)
                if item is None:
                    if once:
                        return handled
                    time.sleep(self.poll)
                    continue
                self.process(session, item)
                handled += 1

    def recover(self) -> int:
        """Items left `running` by a runner that died: finish waiting for their run, or re-queue."""
        from zerodeck.core.launch.reconcile import reconcile
        from zerodeck.store.engine import open_store
        from zerodeck.store.queries import queue_items, update_queue_item

        handled = 0
        with open_store() as session:
            reconcile(session)
            for item in queue_items(session, states=["running"]):
                assert item.id is not None
                if item.run_id is None:
                    update_queue_item(session, item.id, state="pending", started_at=None)
                    self.on_event(f"queue item {item.id}: re-queued (its runner stopped before starting it)")
                    continue
                self.on_event(f"queue item {item.id}: waiting for run {item.run_id} started earlier")
                self._await(session, item.id, item.run_id)
                handled += 1
        return handled

    def process(self, session: Any, item: Any) -> None:
        from zerodeck.core.launch import api
        from zerodeck.core.recipe import RecipeError
        from zerodeck.store.models import utcnow
        from zerodeck.store.queries import update_queue_item

        try:
            recipe = _snapshot_recipe(session, item)
        except (RecipeError, OperationFailed) as exc:
            update_queue_item(session, item.id, state="failed", reason=str(exc), ended_at=utcnow())
            self.on_event(f"queue item {item.id}: failed: {exc}")
            return
        run_id = api.create_run(session, recipe, Path(item.recipe_ref))
        update_queue_item(session, item.id, run_id=run_id)
        if not Path(item.recipe_ref).is_file():
            reason = f"recipe file {item.recipe_ref} no longer exists"
            api.record_failed(session, run_id, reason)
            update_queue_item(session, item.id, state="failed", reason=reason, ended_at=utcnow())
            self.on_event(f"queue item {item.id}: run {run_id} failed: {reason}")
            return
        self.on_event(f"queue item {item.id}: run {run_id} {recipe.name} starting")
        try:
            api.launch_recorded(session, run_id, recipe, Path(item.recipe_ref))
        except OperationFailed as exc:
            self.on_event(f"queue item {item.id}: {exc}")
        self._await(session, item.id, run_id)

    def _await(self, session: Any, item_id: int, run_id: int) -> None:
        from zerodeck.core.launch import api, procs
        from zerodeck.store.models import utcnow
        from zerodeck.store.queries import update_queue_item

        final = api.wait_run(run_id, poll=1.0)
        tag = run_tag(session, run_id)
        left = procs.wait_gone(tag, GONE_WAIT_S)
        if left:
            procs.terminate_run(tag, None, grace=5.0)
        ok = final.outcome == "succeeded"
        update_queue_item(session, item_id, state="done" if ok else "failed",
                          reason=None if ok else f"run {run_id}: {final.outcome}: {final.reason or ''}".rstrip(": "),
                          ended_at=utcnow())
        self.on_event(f"queue item {item_id}: run {run_id} {final.outcome}")
