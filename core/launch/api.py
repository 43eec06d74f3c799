"""The Python API the CLI and the TUI both call to start, watch, stop and list runs.

`start_run` does everything that can fail cheaply in the caller's process (render, preflight),
records the run, writes its files and starts its supervisor detached; from then on the supervisor
owns it. Every function takes the caller's `Store` and returns `RunRecord`s, never live ORM rows.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from zerodeck.core import paths
from zerodeck.core.alerts.config import for_recipe, load_config
from zerodeck.core.errors import BadInput, OperationFailed, ZerodeckError
from zerodeck.core.launch import acquire, preflight, procs
from zerodeck.core.launch.acquire import LocalHost
from zerodeck.core.launch.backends import render, resolve
from zerodeck.core.launch.context import RenderContext
from zerodeck.core.launch.environment import RUN_ID_VAR, RUN_TAG, host_info, mask_env, versions
from zerodeck.core.launch.ledger import Placement
from zerodeck.core.launch.procs import SUPERVISOR_MODULE
from zerodeck.core.launch.slurm import uses_slurm
from zerodeck.core.launch.slurm.client import client_found
from zerodeck.core.launch.spec import JobSpec
from zerodeck.core.launch.supervisor import mount_point
from zerodeck.core.plan.verdict import plan_recipe
from zerodeck.core.recipe.load import content_hash, to_toml
from zerodeck.core.recipe.model import Recipe
from zerodeck.store.api import Store
from zerodeck.store.errors import StoreError, StoreReadOnly, StoreUnreachable
from zerodeck.store.records import RunRecord

STOP_WAIT_S = 30.0


def recipe_axes(recipe: Recipe) -> dict[str, Any]:
    """The run-axis columns compare and calibration group by (labelled as `core.compare.rows` does)."""
    model = recipe.model
    label = model.name or (str(model.path or "").rstrip("/").rsplit("/", 1)[-1] or None)
    kind = recipe.method.kind
    return {"model": label, "method": kind, "lora_rank": recipe.method.rank if kind == "lora" else None,
            "zero_stage": recipe.zero.stage, "offload": recipe.zero.offload,
            "micro_batch": recipe.train.micro_batch, "seq_len": recipe.train.seq_len,
            "data_samples": recipe.data.samples}


def create_run(store: Store, recipe: Recipe, path: Path | None) -> int:
    """Snapshot the recipe and add its Run row (queued)."""

    digest = content_hash(recipe)
    source = str(path) if path else None
    store.save_snapshot(hash=digest, name=recipe.name, toml=to_toml(recipe), source_path=source)
    axes = recipe_axes(recipe)
    return store.add_run(name=recipe.name, recipe_hash=digest, recipe_path=source, tags=recipe.tags,
                         backend=recipe.launch.backend, device=recipe.hardware.device, cards=recipe.hardware.cards,
                         card_gb=recipe.hardware.card_gb, predicted_peak_gib=predicted_peak_gib(recipe),
                         model=axes["model"], method=axes["method"], lora_rank=axes["lora_rank"],
                         zero_stage=axes["zero_stage"], offload=axes["offload"], micro_batch=axes["micro_batch"],
                         seq_len=axes["seq_len"], data_samples=axes["data_samples"])


def predicted_peak_gib(recipe: Recipe) -> float | None:
    """The planner's raw per-card peak, kept with the run so calibration compares like with like."""

    try:
        return round(plan_recipe(recipe).breakdown.total, 3)
    except (ZerodeckError, LookupError, OSError, ValueError):
        return None


def peak_mb(recipe: Recipe) -> float | None:
    """The planner's per-card peak in MiB, what the ledger checks free memory against."""
    gib = predicted_peak_gib(recipe)
    return gib * 1024 if gib is not None else None


def record_failed(store: Store, run_id: int, reason: str) -> None:
    store.finish_run(run_id, "failed", reason)


def start_run(store: Store, recipe: Recipe, path: Path | None, detach: bool = True, *,
              host: LocalHost | None = None) -> int:
    """Record and launch one run; returns its id. With detach=False, waits for the outcome too.

    Its cards come from the card ledger (core/launch/acquire.py): when they are taken, OperationFailed
    says by whom and nothing is recorded. A run that cannot start (missing launcher, unwritable
    directory) is recorded `failed` with the reason and OperationFailed is raised with the same line.
    `host` is this host as the process's entry read it; without one the process environment is read.
    """
    host = host or acquire.local_host(os.environ)
    # A Slurm run's cards are the scheduler's to give, on its nodes: this host's ledger is not asked.
    cards = None if uses_slurm(recipe) else acquire.choose(store, host, recipe, peak_mb(recipe))
    run_id = create_run(store, recipe, path)
    launch_recorded(store, run_id, recipe, path, host=host, cards=cards)
    if not detach:
        wait_run(store, run_id)
    return run_id


def launch_recorded(store: Store, run_id: int, recipe: Recipe, path: Path | None,
                    placement: Placement | None = None, *, resume_from: Path | None = None,
                    retries: int | None = None, host: LocalHost | None = None,
                    cards: list[int] | None = None) -> None:
    """Start a run already recorded by `create_run` (the queue records first, then launches).

    Without a `placement` (the queue runner's holds) the run takes its cards from the ledger here
    (`cards` when the caller chose them already), so every launch path is placed by one rule.

    Nothing raises past it but OperationFailed (the run is then recorded failed with the same
    reason) and the store's own errors: an unexpected error fails this run, `internal error: ...`,
    instead of leaving it queued and the caller (the queue runner) dead."""

    try:
        if placement is None and uses_slurm(recipe):
            placement = slurm_placement()
        if placement is None:
            try:
                where = host or acquire.local_host(os.environ)
                placement = acquire.take(store, run_id, recipe, where, peak_mb(recipe), cards)
            except (OperationFailed, BadInput) as exc:
                _fail(store, run_id, str(exc))
        _launch(store, run_id, recipe, path, placement, resume_from=resume_from, retries=retries)
    except (OperationFailed, StoreError):
        raise
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            _fail(store, run_id, internal_error(exc))

        _fail(store, run_id, f"no space left on {mount_point(paths.runs_dir())}")
    except Exception as exc:
        _fail(store, run_id, internal_error(exc))


def internal_error(exc: BaseException) -> str:
    return f"internal error: {type(exc).__name__}: {exc}"


def _launch(store: Store, run_id: int, recipe: Recipe, path: Path | None, placement: Placement, *,
            resume_from: Path | None = None, retries: int | None = None) -> None:

    run_dir = paths.runs_dir() / str(run_id)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        log_path = run_dir / "run.log"
        log_path.touch()
    except OSError as exc:
        _fail(store, run_id, f"cannot write the run directory {run_dir}: {exc.strerror or exc}")
    store.update_run(run_id, workdir=str(run_dir), log_path=str(log_path))
    port, devices, hccl = placement.master_port, list(placement.card_ids), placement.hccl_base_port
    recipe_dir = path.parent.resolve() if path else Path.cwd()
    ctx = RenderContext(run_id, run_dir, recipe_dir, port, devices, sys.executable, hccl_base_port=hccl,
                        resume_from=resume_from)
    try:
        launch = render(recipe, ctx)
    except BadInput as exc:
        _fail(store, run_id, str(exc))
    inner = launch  # what one node runs: the preflight checks it, the follower submits its wrapping
    if uses_slurm(recipe):
        from zerodeck.core.launch.slurm.render import wrap

        try:
            launch = wrap(recipe, launch, ctx, cache=paths.home() / "slurm" / "queue.json")
        except BadInput as exc:
            _fail(store, run_id, str(exc))
    try:
        alerts = for_recipe(load_config(paths.config_file()), recipe)
    except BadInput as exc:
        _fail(store, run_id, str(exc))
    if resume_from is not None:  # what a `command` / script backend's own code reads to resume
        launch.env["ZERODECK_RESUME_FROM"] = str(resume_from)
    env_path = launch.env.get("PATH")
    for name, content in launch.files.items():
        (run_dir / name).write_text(content)
    full_env = {**os.environ, **launch.env}
    # Where the job writes its results (LLaMA-Factory's trainer_log.jsonl, train_results.json).
    out = recipe.launch.output_dir
    output_dir = launch.env.get("ZERODECK_OUTPUT_DIR") or str(resolve(out, recipe_dir) if out else run_dir / "output")
    spec = JobSpec(argv=tuple(launch.argv), env=dict(launch.env), cwd=str(launch.cwd) if launch.cwd else None,
                   device=recipe.hardware.device, visible_devices=tuple(devices),
                   retries=recipe.launch.retries if retries is None else retries,
                   world_size=launch.ranks, python=sys.executable, output_dir=output_dir,
                   validate_ds_config="ds_config.json" in launch.files
                   and recipe.launch.backend not in ("command", "builtin"),
                   store_url=store.url, alert_urls=alerts.urls, alert_on=alerts.on,
                   claim_token=placement.claim_token, host=placement.host, **watch_fields(recipe),
                   scheduler=recipe.cluster.scheduler)
    spec.write(run_dir)
    store.update_run(run_id, argv=launch.argv, env=mask_env(full_env), rendered=launch.files, versions=versions(),
                     host=placement.host, master_port=port,
                     card_ids=devices, summary={"host": host_info(), "cwd": spec.cwd})
    problem = preflight.check(recipe, inner, port, env_path, recipe_path=path, recipe_dir=recipe_dir)
    if problem is None and uses_slurm(recipe) and client_found() is None:
        problem = "sbatch: not found on PATH (install the Slurm client, or drop [cluster] scheduler = \"slurm\")"
    if problem:
        _fail(store, run_id, problem)
    # Recorded at once, so a supervisor that dies before it writes anything is noticed by the first poll.
    store.update_run(run_id, supervisor_pid=spawn_supervisor(store, run_id, run_dir))


def slurm_placement() -> Placement:
    """A Slurm run holds nothing on this host: Slurm places it, and node.sh picks its rendezvous port."""
    return Placement(host=socket.gethostname(), card_ids=(), master_port=0)


def watch_fields(recipe: Recipe) -> dict[str, Any]:
    """The recipe's [watch] table and [launch] resume as launch-spec fields."""
    w = recipe.watch
    return {"stall_factor": w.stall_factor, "stall_floor_s": w.stall_floor_s, "stall_startup_s": w.stall_startup_s,
            "on_stall": w.on_stall, "stall_grace_s": w.stall_grace_s, "resume": recipe.launch.resume}


def _fail(store: Store, run_id: int, reason: str) -> NoReturn:
    record_failed(store, run_id, reason)
    raise OperationFailed(f"run {run_id} failed: {reason}")


def spawn_supervisor(store: Store, run_id: int, run_dir: Path, adopt: bool = False) -> int:
    """Start the run's detached supervisor; returns its pid.

    It reads its store from the run's launch spec. An adopted run may have none, or one written by
    an older zerodeck, so its supervisor is also told the store in the environment given to the
    child (never by changing ours)."""

    env = {k: v for k, v in os.environ.items() if k not in (RUN_TAG, RUN_ID_VAR)}
    if adopt:
        env["ZERODECK_DB"] = store.url
    argv = [sys.executable, "-m", SUPERVISOR_MODULE, str(run_id), "--run-dir", str(run_dir)]
    argv += ["--adopt"] if adopt else []
    with open(run_dir / "supervisor.log", "ab") as errlog:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errlog,
                                start_new_session=True, close_fds=True, env=env, cwd=str(run_dir))
    return proc.pid


def get_run(store: Store, run_id: int) -> RunRecord:
    run = store.run(run_id)
    if run is None:
        raise BadInput(f"no run {run_id}")
    return run


def list_runs(store: Store, limit: int | None = None) -> list[RunRecord]:
    return store.runs(limit=limit)


def wait_run(store: Store, run_id: int, poll: float = 1.0,
             on_progress: Callable[[RunRecord], None] | None = None,
             on_unreachable: Callable[[StoreUnreachable | None], None] | None = None) -> RunRecord:
    """Block until the run is finished; `on_progress(run)` is called after each poll.

    Each poll also checks that the run's supervisor lives (`refresh`), so a killed supervisor is
    re-adopted or its run concluded within a poll or two, never waited on forever. A store that
    cannot be reached is waited out (the run goes on and its supervisor keeps its record until the
    store is back): `on_unreachable(error)` when it goes away, `on_unreachable(None)` when it is back."""
    away = False
    while True:
        try:
            current = refresh(store, run_id)
        except StoreUnreachable as exc:
            if not away and on_unreachable is not None:
                on_unreachable(exc)
            away = True
            time.sleep(poll)
            continue
        if away and on_unreachable is not None:
            on_unreachable(None)
        away = False
        if on_progress is not None:
            on_progress(current)
        if current.finished:
            return current
        time.sleep(poll)


def refresh(store: Store, run_id: int) -> RunRecord:
    """The run as recorded, after reconciling it if its supervisor is gone (the watcher's liveness check)."""
    return checked(store, get_run(store, run_id))


def checked(store: Store, current: RunRecord) -> RunRecord:
    """`refresh` for a run the caller has just read: reconciled (and read again) only when it is
    unfinished and its supervisor is gone."""
    if current.finished or procs.supervisor_alive(current.supervisor_pid, current.id, current.workdir):
        return current
    try:
        # launch.reconcile imports this module (spawn_supervisor): a cycle at import time.
        from zerodeck.core.launch.reconcile import reconcile_run

        if reconcile_run(store, current) is None:
            return current
    except StoreReadOnly:
        return current
    return get_run(store, current.id)


def _stop_remote(store: Store, run: RunRecord, wait: float) -> RunRecord:
    """A run on another server (issue 14): only its own supervisor can stop its processes, and it
    reads the request in the store every second; nothing here may signal a pid or record an end."""
    if run.finished:
        return run
    store.request_stop(run.id)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        current = get_run(store, run.id)
        if current.finished:
            return current
        time.sleep(0.5)
    raise OperationFailed(f"run {run.id} runs on host {run.host}: asked to stop, it has not ended within "
                          f"{wait:g} s (its supervisor there stops it; a silent host's run is marked lost)")


def stop_run(store: Store, run_id: int, wait: float = STOP_WAIT_S) -> RunRecord:
    """Ask the supervisor to stop the run; end it ourselves if the supervisor is gone.

    Returns once no process of the run remains (OperationFailed if some do).
    """
    run: RunRecord | None = get_run(store, run_id)
    assert run is not None
    tag = run.workdir
    from zerodeck.core.launch.hostname import this_host

    if run.host is not None and run.host != this_host():
        return _stop_remote(store, run, wait)
    if run.finished and not procs.tagged_pids(tag):
        return run
    store.request_stop(run_id)
    sup_alive = procs.supervisor_alive(run.supervisor_pid, run_id, tag)
    if sup_alive and run.supervisor_pid:
        try:
            os.kill(run.supervisor_pid, signal.SIGTERM)
        except ProcessLookupError:
            sup_alive = False
    deadline = time.monotonic() + wait
    while sup_alive and time.monotonic() < deadline:
        run = store.run(run_id)
        if run is not None and run.finished:
            break
        sup_alive = procs.supervisor_alive(run.supervisor_pid if run else None, run_id, tag)
        time.sleep(0.2)
    left = procs.tagged_pids(tag)
    if left:
        # Signal the group only while its leader is still ours: a finished run's pgid may be reused.
        pgid = run.pgid if run is not None and run.pgid in left else None
        left = procs.terminate_run(tag, pgid, grace=2.0)
    if not get_run(store, run_id).finished:
        store.finish_run(run_id, "killed", "stopped on request")
    if left:
        raise OperationFailed(f"run {run_id}: processes {sorted(left)} survived SIGKILL")
    return get_run(store, run_id)
