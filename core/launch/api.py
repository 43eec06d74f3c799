"""The Python API the CLI and the TUI both call to start, watch, stop and list runs.

`start_run` does everything that can fail cheaply in the caller's process (render, preflight),
records the run, writes its files and starts its supervisor detached; from then on the supervisor
owns it. Plain dataclasses come back, never live ORM rows.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from zerodeck.core.errors import BadInput, OperationFailed
from zerodeck.core.recipe.model import Recipe

ACTIVE = ("queued", "starting", "running")
STOP_WAIT_S = 30.0


@dataclass
class RunInfo:
    id: int
    name: str
    status: str
    outcome: str | None
    reason: str | None
    backend: str
    device: str
    cards: int
    steps_done: int | None
    steps_total: int | None
    final_loss: float | None
    samples_per_s: float | None
    tokens_per_s: float | None
    train_runtime_s: float | None
    measured_peak_gib: float | None
    exit_code: int | None
    attempts: int
    created_at: str | None
    started_at: str | None
    ended_at: str | None
    log_path: str | None
    recipe_path: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _iso(v: Any) -> str | None:
    return v.isoformat() if v is not None else None


def info(run: Any) -> RunInfo:
    return RunInfo(run.id, run.name, run.status, run.outcome, run.reason, run.backend, run.device, run.cards,
                   run.steps_done, run.steps_total, run.final_loss, run.samples_per_s, run.tokens_per_s,
                   run.train_runtime_s, run.measured_peak_gib, run.exit_code, run.attempts,
                   _iso(run.created_at), _iso(run.started_at), _iso(run.ended_at), run.log_path, run.recipe_path)


def _active_ports(session: Any) -> set[int]:
    from zerodeck.store.queries import list_runs as q_list

    return {r.master_port for r in q_list(session) if r.status in ACTIVE and r.master_port}


def record_failed(session: Any, run_id: int, reason: str) -> None:
    from zerodeck.store.models import utcnow
    from zerodeck.store.queries import update_run

    update_run(session, run_id, status="finished", outcome="failed", reason=reason, ended_at=utcnow())


def create_run(session: Any, recipe: Recipe, path: Path | None) -> int:
    """Snapshot the recipe and add its Run row (queued)."""
    from zerodeck.core.recipe.load import content_hash, to_toml
    from zerodeck.store.models import Run
    from zerodeck.store.queries import add_run, save_snapshot

    digest = content_hash(recipe)
    save_snapshot(session, hash=digest, name=recipe.name, toml=to_toml(recipe),
                  source_path=str(path) if path else None)
    run = add_run(session, Run(name=recipe.name, recipe_hash=digest, recipe_path=str(path) if path else None,
                               tags=json.dumps(recipe.tags), backend=recipe.launch.backend,
                               device=recipe.hardware.device, cards=recipe.hardware.cards,
                               card_gb=recipe.hardware.card_gb))
    assert run.id is not None
    return run.id


def start_run(recipe: Recipe, path: Path | None, detach: bool = True, *, session: Any = None) -> int:
    """Record and launch one run; returns its id. With detach=False, waits for the outcome too.

    A run that cannot start (missing launcher, taken port, unwritable directory) is recorded
    `failed` with the reason and OperationFailed is raised with the same line.
    """
    from zerodeck.store.engine import open_store

    own = session is None
    session = session or open_store()
    try:
        run_id = create_run(session, recipe, path)
        _launch(session, run_id, recipe, path)
    finally:
        if own:
            session.close()
    if not detach:
        wait_run(run_id)
    return run_id


def launch_recorded(session: Any, run_id: int, recipe: Recipe, path: Path | None) -> None:
    """Start a run already recorded by `create_run` (the queue records first, then launches)."""
    _launch(session, run_id, recipe, path)


def _launch(session: Any, run_id: int, recipe: Recipe, path: Path | None) -> None:
    from zerodeck.core import paths
    from zerodeck.core.launch import preflight
    from zerodeck.core.launch.backends import render
    from zerodeck.core.launch.context import RenderContext
    from zerodeck.core.launch.environment import host_info, mask_env, versions
    from zerodeck.core.launch.ports import pick_port
    from zerodeck.core.launch.supervisor import SPEC_FILE
    from zerodeck.store.queries import update_run

    run_dir = paths.runs_dir() / str(run_id)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        log_path = run_dir / "run.log"
        log_path.touch()
    except OSError as exc:
        return _fail(session, run_id, f"cannot write the run directory {run_dir}: {exc.strerror or exc}")
    update_run(session, run_id, workdir=str(run_dir), log_path=str(log_path))
    fixed = recipe.launch.options.get("master_port")
    port = int(fixed) if isinstance(fixed, int) else pick_port(_active_ports(session))
    devices = recipe.hardware.devices or list(range(recipe.hardware.cards))
    recipe_dir = path.parent.resolve() if path else Path.cwd()
    ctx = RenderContext(run_id, run_dir, recipe_dir, port, devices, sys.executable)
    try:
        launch = render(recipe, ctx)
    except BadInput as exc:
        return _fail(session, run_id, str(exc))
    env_path = launch.env.get("PATH")
    for name, content in launch.files.items():
        (run_dir / name).write_text(content)
    full_env = {**os.environ, **launch.env}
    from zerodeck.core.launch.backends import resolve

    # Where the job writes its results (LLaMA-Factory's trainer_log.jsonl, train_results.json).
    out = recipe.launch.output_dir
    output_dir = launch.env.get("ZERODECK_OUTPUT_DIR") or str(resolve(out, recipe_dir) if out else run_dir / "output")
    spec = {"argv": launch.argv, "env": launch.env, "cwd": str(launch.cwd) if launch.cwd else None,
            "device": recipe.hardware.device, "visible_devices": devices, "retries": recipe.launch.retries,
            "world_size": launch.ranks, "python": sys.executable, "output_dir": output_dir,
            # The builtin trainer hands its config to deepspeed.initialize first thing, which runs the
            # same DeepSpeedConfig checks; a separate pass would only add seconds to every start.
            "validate_ds_config": "ds_config.json" in launch.files
            and recipe.launch.backend not in ("command", "builtin")}
    spec_file = run_dir / SPEC_FILE
    spec_file.write_text(json.dumps(spec, indent=2))
    spec_file.chmod(0o600)  # holds the unmasked environment
    update_run(session, run_id, argv=launch.argv, env=mask_env(full_env), rendered=launch.files,
               versions=versions(), host=socket.gethostname(), master_port=port,
               summary={"host": host_info(), "cwd": spec["cwd"]})
    problem = preflight.check(recipe, launch, port, env_path)
    if problem:
        return _fail(session, run_id, problem)
    spawn_supervisor(run_id, run_dir)


def _fail(session: Any, run_id: int, reason: str) -> None:
    record_failed(session, run_id, reason)
    raise OperationFailed(f"run {run_id} failed: {reason}")


def spawn_supervisor(run_id: int, run_dir: Path, *, adopt: bool = False) -> int:
    from zerodeck.core.launch.environment import RUN_ID_VAR, RUN_TAG
    from zerodeck.core.launch.procs import SUPERVISOR_MODULE

    env = {k: v for k, v in os.environ.items() if k not in (RUN_TAG, RUN_ID_VAR)}
    argv = [sys.executable, "-m", SUPERVISOR_MODULE, str(run_id)] + (["--adopt"] if adopt else [])
    with open(run_dir / "supervisor.log", "ab") as errlog:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errlog,
                                start_new_session=True, close_fds=True, env=env, cwd=str(run_dir))
    return proc.pid


def get_run(run_id: int) -> RunInfo:
    from zerodeck.store.engine import open_store
    from zerodeck.store.queries import get_run as q_get

    with open_store() as session:
        run = q_get(session, run_id)
        if run is None:
            raise BadInput(f"no run {run_id}")
        return info(run)


def list_runs(limit: int | None = None) -> list[RunInfo]:
    from zerodeck.store.engine import open_store
    from zerodeck.store.queries import list_runs as q_list

    with open_store() as session:
        return [info(r) for r in q_list(session, limit=limit)]


def wait_run(run_id: int, poll: float = 1.0, on_progress: Any = None) -> RunInfo:
    """Block until the run is finished; `on_progress(RunInfo)` is called after each poll."""
    while True:
        current = get_run(run_id)
        if on_progress is not None:
            on_progress(current)
        if current.status == "finished":
            return current
        time.sleep(poll)


def stop_run(run_id: int, wait: float = STOP_WAIT_S) -> RunInfo:
    """Ask the supervisor to stop the run; end it ourselves if the supervisor is gone.

    Returns once no process of the run remains (OperationFailed if some do).
    """
    import signal

    from zerodeck.core.launch import procs
    from zerodeck.store.engine import open_store
    from zerodeck.store.models import utcnow
    from zerodeck.store.queries import get_run as q_get
    from zerodeck.store.queries import update_run

    with open_store() as session:
        run = q_get(session, run_id)
        if run is None:
            raise BadInput(f"no run {run_id}")
        tag = run.workdir
        if run.status == "finished" and not procs.tagged_pids(tag):
            return info(run)
        update_run(session, run_id, stop_requested=True)
        sup_alive = procs.supervisor_alive(run.supervisor_pid, run_id, tag)
        if sup_alive and run.supervisor_pid:
            try:
                os.kill(run.supervisor_pid, signal.SIGTERM)
            except ProcessLookupError:
                sup_alive = False
        deadline = time.monotonic() + wait
        while sup_alive and time.monotonic() < deadline:
            session.expire_all()
            run = q_get(session, run_id)
            if run is not None and run.status == "finished":
                break
            sup_alive = procs.supervisor_alive(run.supervisor_pid if run else None, run_id, tag)
            time.sleep(0.2)
        left = procs.tagged_pids(tag)
        if left:
            # Signal the group only while its leader is still ours: a finished run's pgid may be reused.
            pgid = run.pgid if run is not None and run.pgid in left else None
            left = procs.terminate_run(tag, pgid, grace=2.0)
        session.expire_all()
        run = q_get(session, run_id)
        assert run is not None
        if run.status != "finished":
            update_run(session, run_id, status="finished", outcome="killed", reason="stopped on request",
                       ended_at=utcnow())
        if left:
            raise OperationFailed(f"run {run_id}: processes {sorted(left)} survived SIGKILL")
        return info(q_get(session, run_id))
