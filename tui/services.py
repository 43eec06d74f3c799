"""The one place the TUI calls into zerodeck.core and the store.

Every method here may block (file reads, the database, the planner, launching) and is called from
a worker thread, never from the event loop. The store is the `Store` the app was made with, passed
down to every core call, so what the TUI launches and what it reads are the same database. The TUI
adds no logic the CLI lacks: each method is a call into the same core function the matching CLI
command uses.
"""

from __future__ import annotations

import json
import os
import shlex
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zerodeck.core.outcome.evals import eval_points
from zerodeck.tui.view import (
    BadFile,
    CardPeakView,
    CatalogRow,
    ClusterView,
    Curves,
    Progress,
    RunDetail,
    run_duration_s,
)

# The store and the core modules below are imported where they are used, in worker threads: the first
# screen paints without waiting for SQLAlchemy (~0.45 s) and the planner, launcher and compare modules
# (~70 ms); `bench/bench_tui.py` measures start-up to first paint.
if TYPE_CHECKING:
    from zerodeck.core.compare import Table
    from zerodeck.core.plan.verdict import Plan
    from zerodeck.core.recipe.model import Recipe
    from zerodeck.store.api import Store
    from zerodeck.store.records import CardPeakRecord, MetricRecord, RunRecord

LOG_TAIL_LINES = 200
# A run's record reads top-down: what happened, then where and how, then the paths.
FIELD_ORDER = ("id", "name", "status", "outcome", "reason", "outcome_code", "outcome_device", "outcome_rank",
               "exit_code", "created_at", "started_at", "ended_at", "steps_done", "steps_total", "final_loss",
               "samples_per_s", "tokens_per_s", "step_time_s", "predicted_peak_gib", "measured_peak_gib",
               "grid", "tags", "backend", "device", "cards", "card_gb", "attempts", "host", "log_path",
               "workdir", "recipe_path", "recipe_hash")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Services:
    """With no store given, the environment's (`zerodeck` with no command): opened on first use, in a
    worker, so the TUI process still makes exactly one."""

    def __init__(self, store: Store | None = None, catalog_dirs: list[Path] | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self._store = store
        self._store_lock = threading.Lock()
        self.catalog_dirs = catalog_dirs
        self.clock = clock
        # The live view reconciles the run it follows when its supervisor dies (issue 11: every watcher
        # notices); the app turns this off with `reconcile=False` (tests whose runs have no supervisor).
        self.watch_supervisors = True
        self._recipes: dict[str, tuple[Recipe, Path]] = {}

    @property
    def store(self) -> Store:
        with self._store_lock:
            if self._store is None:
                from zerodeck.store.api import Store

                self._store = Store.from_environment()
            return self._store

    # -- catalog -----------------------------------------------------------------------------
    def catalog(self, with_plan: bool = True) -> tuple[list[CatalogRow], list[BadFile]]:
        from zerodeck.core.plan.calibration import calibration_table
        from zerodeck.core.plan.verdict import plan_recipe
        from zerodeck.core.recipe.catalog import catalog_rows, load_catalog

        entries = load_catalog(self.catalog_dirs)
        # One read of the store's calibration for the whole catalog, not one per recipe.
        calibration = calibration_table(self.store) if with_plan else None
        recipes: dict[str, tuple[Recipe, Path]] = {}
        members = {m.name: (m, e.path) for e in entries for m in e.members}
        rows: list[CatalogRow] = []
        for r in catalog_rows(entries):
            recipe, path = members[r["name"]]
            recipes[r["name"]] = (recipe, path)
            extra: dict[str, Any] = {}
            if with_plan:
                try:
                    p = plan_recipe(recipe, calibration=calibration)
                    extra = {"per_card_gib": p.total_gib, "capacity_gib": p.capacity_gib, "verdict": p.verdict}
                except Exception as exc:  # one bad plan never hides the catalog
                    extra = {"plan_error": f"{type(exc).__name__}: {exc}"}
            rows.append(CatalogRow(
                name=r["name"], model=str(r["model"]), method=r["method"], zero_stage=r["zero_stage"],
                offload=r["offload"], cards=r["cards"], device=r["device"], data_samples=r["data_samples"],
                path=r["path"], grid=r["grid"], **extra))
        self._recipes = recipes
        bad = [BadFile(str(e.path), tuple(str(p) for p in e.problems)) for e in entries if e.problems]
        return rows, bad

    def recipe(self, name: str) -> tuple[Recipe, Path]:
        if name not in self._recipes:
            from zerodeck.core.recipe.catalog import find_recipe

            self._recipes[name] = find_recipe(name, self.catalog_dirs)
        return self._recipes[name]

    def edit_command(self, path: str) -> list[str]:
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
        return [*shlex.split(editor), path]

    def validate(self, path: str) -> list[str]:
        from zerodeck.core.recipe.catalog import load_entry

        return [str(p) for p in load_entry(Path(path)).problems]

    # -- planner -----------------------------------------------------------------------------
    def plan(self, name: str) -> Plan:
        from zerodeck.core.plan.calibration import calibration_table
        from zerodeck.core.plan.verdict import plan_recipe

        recipe, _ = self.recipe(name)
        return plan_recipe(recipe, calibration=calibration_table(self.store))

    def data_advice(self, name: str) -> dict[str, Any] | None:
        """`zerodeck data inspect` of the recipe's local data file, as its JSON dict."""
        from zerodeck.core.plan.data import inspect_data

        recipe, path = self.recipe(name)
        if not recipe.data.path:
            return None
        data = Path(recipe.data.path)
        if not data.is_absolute():
            data = path.parent / data
        advice: dict[str, Any] = inspect_data(data, recipe.model.label, store=self.store).to_dict()
        return advice

    # -- runs --------------------------------------------------------------------------------
    def runs(self, limit: int = 1000) -> tuple[list[RunRecord], int]:
        """The newest runs and how many the store holds. A run whose summary has no measured peak yet
        shows the largest card peak recorded (host RAM excluded)."""
        runs = self.store.runs(limit=limit)
        total = self.store.count_runs()
        peaks = self.store.max_card_peak_gib([r.id for r in runs if r.measured_peak_gib is None])
        return [replace(r, measured_peak_gib=peaks[r.id]) if r.id in peaks else r for r in runs], total

    def runs_stamp(self) -> tuple[Any, ...]:
        """What tells whether a list of runs read earlier is out of date, in three small queries
        instead of a thousand rows: how many runs, the newest id, and where each active run is (only
        active runs change). The Runs screen compares it before reading its rows again."""
        from zerodeck.store.records import LIVE_STATUSES

        newest = self.store.runs(limit=1)
        active = self.store.runs(statuses=LIVE_STATUSES)
        return (self.store.count_runs(), newest[0].id if newest else None,
                tuple((r.id, r.status, r.outcome, r.started_at, r.ended_at, r.steps_done, r.samples_per_s,
                       r.final_loss, r.measured_peak_gib) for r in active))

    def active_runs(self) -> list[RunRecord]:
        """The runs a process may belong to right now, newest first (what the live view follows)."""
        from zerodeck.store.records import LIVE_STATUSES

        return self.store.runs(statuses=LIVE_STATUSES)

    def run_detail(self, run_id: int) -> RunDetail:
        from zerodeck.store.records import RECORD_FIELDS

        run = self.store.run(run_id)
        if run is None:
            raise KeyError(run_id)
        peaks = tuple(CardPeakView(p.card, p.peak_mb, _capacity_mb(run, p)) for p in self.store.card_peaks(run_id))
        # A resumed run's curves are its chain's, as `zerodeck chart` draws them (issue 18).
        metrics = self.store.chain_metrics(run_id) if run.parent_id is not None else self.store.metrics(run_id)
        losses = tuple(m.loss for m in metrics if m.loss is not None)
        curves = Curves(loss=tuple((m.step, m.loss) for m in metrics if m.loss is not None),
                        samples_per_s=tuple((m.step, m.samples_per_s) for m in metrics if m.samples_per_s is not None),
                        eval_loss=tuple(eval_points(run.log_path)))
        order = [*FIELD_ORDER, *(k for k in RECORD_FIELDS if k not in FIELD_ORDER)]
        shown = tuple((k, _show(k, getattr(run, k))) for k in order if k != "failure_snapshot")
        return RunDetail(run=run, fields=shown, peaks=peaks, losses=losses, failure_snapshot=run.failure_snapshot,
                         log_tail=tuple(tail(run.log_path, LOG_TAIL_LINES)), curves=curves,
                         events=tuple((e.at, e.kind, e.detail) for e in self.store.events(run_id)))

    def run_and_points(self, run_id: int, after_step: int | None = None) -> tuple[RunRecord, list[MetricRecord]]:
        """A run and its metric points after `after_step`: the live view reads only what is new each
        second, however long the run."""
        run = self.store.run(run_id)
        if run is None:
            raise KeyError(run_id)
        if self.watch_supervisors:
            from zerodeck.core.launch import api

            run = api.checked(self.store, run)
        return run, self.store.metrics(run_id, after_step=after_step)

    # -- launch / queue / stop ---------------------------------------------------------------
    def launch(self, name: str) -> int:
        """`zerodeck run NAME --detach`: record the run and hand it to its own supervisor."""
        from zerodeck.core.launch import api

        recipe, path = self.recipe(name)
        return int(api.start_run(self.store, recipe, path, detach=True))

    def enqueue(self, name: str) -> int:
        """`zerodeck queue add NAME`: the queue row the runner picks up."""
        from zerodeck.core.launch import queue

        return int(queue.add(self.store, [self.recipe(name)])[0])

    def stop(self, run_id: int) -> None:
        """`zerodeck stop RUN`: ask the supervisor; returns once the run's processes are gone."""
        from zerodeck.core.launch import api

        api.stop_run(self.store, run_id)

    def reconcile(self) -> list[tuple[int, str]]:
        """Runs whose supervisor vanished are re-adopted or marked lost, as every CLI command does."""
        from zerodeck.core.launch.reconcile import reconcile

        return list(reconcile(self.store))

    # -- compare ---------------------------------------------------------------------------
    def hosts(self) -> list[dict[str, Any]]:
        """Every host sharing the store: its cards, who holds them, its last heartbeat (stale marked)."""
        from zerodeck.core.launch.hostname import host_grace
        from zerodeck.core.launch.ledger import hosts_json

        return hosts_json(self.store, host_grace(), self.clock())

    def compare_table(self, run_ids: list[int], diff_only: bool = False,
                      pivot: tuple[str, str, str] | None = None) -> Table:
        """The core compare Table of these runs, as `zerodeck compare` builds it."""
        from zerodeck.core.compare import Selection, comparison_table, load_rows, pivot_table

        rows = load_rows(self.store, Selection(refs=tuple(str(i) for i in run_ids)))
        if pivot:
            return pivot_table(rows, *pivot)
        return comparison_table(rows, diff_only=diff_only)

    def compare(self, run_ids: list[int], diff_only: bool = False,
                pivot: tuple[str, str, str] | None = None) -> tuple[list[str], list[list[str]]]:
        """Headers and cells for the screen: the terminal format's columns and number formatting."""
        from zerodeck.core.compare.fields import REPRODUCE
        from zerodeck.core.export.text import human

        table = self.compare_table(run_ids, diff_only, pivot)
        cols = [c for c in table.dropping_empty().columns if c.key not in REPRODUCE]
        return [c.header for c in cols], [[human(r.get(c.key), c.unit) for c in cols] for r in table.rows]

    def export(self, run_ids: list[int], fmt: str, out: Path, diff_only: bool = False,
               pivot: tuple[str, str, str] | None = None) -> Path:
        from zerodeck.core.export.files import write_export
        from zerodeck.core.export.tables import render

        table = self.compare_table(run_ids, diff_only, pivot)
        write_export(out, render(table, fmt), fmt)
        return out

    def cluster_view(self, run_id: int) -> ClusterView | None:
        """The followed run's Slurm job (issue 15), or None for a local run."""
        job = self.store.slurm_job(run_id)
        if job is None:
            return None
        return ClusterView(nodes=job.nodes, cards=job.cards_per_node, state=job.state, reason=job.state_reason,
                           job_id=job.job_id)

    def grid_runs(self, run_id: int) -> list[int]:
        """Every run of the grid the given run was expanded from."""
        return self.store.grid_run_ids(run_id)


def progress_of(run: RunRecord, losses: tuple[float, ...], last: MetricRecord | None, now: datetime) -> Progress:
    """Where the run is: the summary's step when the supervisor wrote one, else the last metric point;
    the ETA extrapolates the time per step so far."""
    step = run.steps_done if run.steps_done is not None else (last.step if last else None)
    sps = run.samples_per_s if run.samples_per_s is not None else (last.samples_per_s if last else None)
    eta = None
    dur = run_duration_s(run, now)
    if step and run.steps_total and dur and run.ended_at is None:
        eta = dur / step * max(0, run.steps_total - step)
    return Progress(run=run, losses=losses, step=step, total=run.steps_total, samples_per_s=sps, eta_s=eta)


def tail(path: str | None, lines: int) -> list[str]:
    """The last lines of a log file, reading only its end (logs can be gigabytes)."""
    if not path:
        return []
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read()
    except OSError:
        return []
    return data.decode("utf-8", "replace").splitlines()[-lines:]


class LogFollower:
    """Follows a growing log file from an offset, like `tail -f`, one read per poll."""

    def __init__(self, path: str | None, start_lines: int = LOG_TAIL_LINES) -> None:
        self.path = path
        self.offset: int | None = None
        self.start_lines = start_lines
        self._partial = b""

    def poll(self) -> list[str]:
        if not self.path:
            return []
        try:
            with open(self.path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                if self.offset is None:
                    self.offset = size
                    return tail(self.path, self.start_lines)
                if size < self.offset:  # truncated or rotated: start again
                    self.offset = 0
                f.seek(self.offset)
                data = f.read(1024 * 1024)
                self.offset += len(data)
        except OSError:
            return []
        data = self._partial + data
        parts = data.split(b"\n")
        self._partial = parts.pop()
        return [p.decode("utf-8", "replace").rstrip("\r") for p in parts]


def _show(key: str, value: Any) -> str:
    from zerodeck.store.records import JSON_COLUMNS

    if value is None:
        return "-"
    if key in JSON_COLUMNS:  # shown as the JSON the store keeps
        return json.dumps(list(value) if isinstance(value, tuple) else value, default=str)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _capacity_mb(run: RunRecord, peak: CardPeakRecord) -> float | None:
    """A card's capacity by the one rule (`core.capacity`): a CPU rank's is the recipe's card_gb, not
    the host RAM its samples carry; the host's own row keeps the host's total."""
    from zerodeck.core.capacity import card_capacity_mb

    if peak.source == "host":
        return peak.total_mb
    return card_capacity_mb(device=run.device, card_gb=run.card_gb, source=peak.source, total_mb=peak.total_mb)
