"""`zerodeck resume RUN` and the automatic resume of `[launch] retries` with `resume = true`.

A resumed run is a new run of the same recipe snapshot, linked to the one it continues
(`parent_id`) and started from the newest complete checkpoint of the chain (`resumed_from`), so each
attempt keeps its own log, outcome and telemetry while compare and charts can read the chain as one
curve (`Store.chain_metrics`).
"""

from __future__ import annotations

from pathlib import Path

from zerodeck.core.errors import BadInput, OperationFailed
from zerodeck.core.launch import api
from zerodeck.core.launch.acquire import LocalHost
from zerodeck.core.launch.checkpoints import Checkpoint, checkpoint_step, newest_complete
from zerodeck.core.launch.spec import JobSpec, SpecError
from zerodeck.core.recipe.load import load_recipe, parse_toml
from zerodeck.core.recipe.model import Recipe
from zerodeck.store.api import Store
from zerodeck.store.records import RunRecord


def find_checkpoint(store: Store, run: RunRecord) -> Checkpoint | None:
    """The newest complete checkpoint of the run, else of the runs it resumed (newest first)."""
    for member in reversed(store.run_chain(run.id)):
        if member.workdir:
            try:
                out = JobSpec.read(Path(member.workdir)).output_dir
            except SpecError:
                out = None
            found = newest_complete(Path(out)) if out else None
            if found is not None:
                return found
        if member.resumed_from:  # it saved nothing of its own: where it started is the newest
            path = Path(member.resumed_from)
            step = checkpoint_step(path)
            if step is not None and path.is_dir():
                return Checkpoint(path, step)
    return None


def snapshot_recipe(store: Store, run: RunRecord) -> tuple[Recipe, Path | None]:
    """The recipe exactly as the run ran it (its stored snapshot), with the path it came from."""
    text = store.snapshot_text(run.recipe_hash)
    if text is None:
        raise OperationFailed(f"run {run.id}: its recipe snapshot {run.recipe_hash} is not in the store")
    path = Path(run.recipe_path) if run.recipe_path else None
    label = run.recipe_path or f"run {run.id} recipe"
    base = path.parent if path else None
    return load_recipe(parse_toml(text, label), label, text, base), path


def resume_run(store: Store, run_id: int, *, retries: int | None = None, automatic: bool = False,
               host: LocalHost | None = None) -> int:
    """Start a run continuing `run_id` from its newest complete checkpoint; returns the new run's id.

    By hand, a run still going is refused (BadInput) and so is one without a complete checkpoint
    (OperationFailed). Automatically (after a comm error or a stall) a chain with no checkpoint yet
    starts over from step 0, still linked to its parent. Its cards come from the ledger like any
    launch's (`host`: this host as the process's entry read it)."""
    parent = api.get_run(store, run_id)
    if parent.active and not automatic:
        raise BadInput(f"run {run_id} is {parent.status}; stop it first (`zerodeck stop {run_id}`)")
    ckpt = find_checkpoint(store, parent)
    if ckpt is None and not automatic:
        raise OperationFailed(f"run {run_id} has no complete checkpoint to resume from")
    recipe, path = snapshot_recipe(store, parent)
    new_id = api.create_run(store, recipe, path)
    store.update_run(new_id, parent_id=parent.id, resumed_from=str(ckpt.path) if ckpt else None)
    if ckpt is not None:
        summary = f"from run {parent.id} at step {ckpt.step}"
        detail = {"summary": summary, "parent": parent.id, "checkpoint": str(ckpt.path), "step": ckpt.step,
                  "automatic": automatic}
    else:
        detail = {"summary": f"after run {parent.id}, from step 0 (no complete checkpoint)", "parent": parent.id,
                  "checkpoint": None, "step": 0, "automatic": automatic}
    store.add_event(new_id, "resumed", detail)
    store.add_event(parent.id, "resumed_as", {"summary": f"run {new_id}", "run": new_id, "automatic": automatic})
    api.launch_recorded(store, new_id, recipe, path, resume_from=ckpt.path if ckpt else None, retries=retries,
                        host=host)
    return new_id
