"""The one place the TUI calls into zerodeck.core and zerodeck.store.

Every method here may block (file reads, the database, the planner, launching) and is called from
a worker thread, never from the event loop. Results come back as the plain objects of `view.py`.
The TUI adds no logic the CLI lacks: each method is a call into the same core function the matching
CLI command uses; where that function is not available in this build, the method says so instead of
re-implementing it.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from zerodeck.tui.view import BadFile, CardPeakView, CatalogRow, Progress, RunDetail, RunRow

LOG_TAIL_LINES = 200
# A run's record reads top-down: what happened, then where and how, then the paths.
FIELD_ORDER = ("id", "name", "status", "outcome", "reason", "outcome_code", "outcome_device", "outcome_rank",
               "exit_code", "created_at", "started_at", "ended_at", "steps_done", "steps_total", "final_loss",
               "samples_per_s", "tokens_per_s", "step_time_s", "predicted_peak_gib", "measured_peak_gib",
               "grid", "tags", "backend", "device", "cards", "card_gb", "attempts", "host", "log_path",
               "workdir", "recipe_path", "recipe_hash")


class Unavailable(Exception):
    """A core feature this build does not have (its module is missing); the message says which."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Services:
    def __init__(self, store_url: str | None = None, catalog_dirs: list[Path] | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.store_url = store_url
        self.catalog_dirs = catalog_dirs
        self.clock = clock
        self._recipes: dict[str, tuple[Any, Path]] = {}

    # -- store -------------------------------------------------------------------------------
    def session(self) -> Any:
        from zerodeck.store.engine import open_store

        return open_store(self.store_url)

    # -- catalog -----------------------------------------------------------------------------
    def catalog(self, with_plan: bool = True) -> tuple[list[CatalogRow], list[BadFile]]:
        from zerodeck.core.cli.recipes_cmd import catalog_rows
        from zerodeck.core.recipe.catalog import load_catalog

        entries = load_catalog(self.catalog_dirs)
        plan = _planner() if with_plan else None
        recipes: dict[str, tuple[Any, Path]] = {}
        members = {m.name: (m, e.path) for e in entries for m in e.members}
        rows: list[CatalogRow] = []
        for r in catalog_rows(entries):
            recipe, path = members[r["name"]]
            recipes[r["name"]] = (recipe, path)
            extra: dict[str, Any] = {}
            if plan is not None:
                try:
                    p = plan(recipe)
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

    def recipe(self, name: str) -> tuple[Any, Path]:
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
    def plan(self, name: str) -> Any:
        plan = _planner()
        if plan is None:
            raise Unavailable("the planner (zerodeck.core.plan.planner) is not in this build")
        recipe, _ = self.recipe(name)
        return plan(recipe)

    def data_advice(self, name: str) -> dict[str, Any] | None:
        """`zerodeck data inspect` of the recipe's local data file, as its JSON dict."""
        from zerodeck.core.plan.data import inspect_data

        recipe, path = self.recipe(name)
        if not recipe.data.path:
            return None
        data = Path(recipe.data.path)
        if not data.is_absolute():
            data = path.parent / data
        return inspect_data(data, recipe.model.label).to_dict()

    # -- runs --------------------------------------------------------------------------------
    def runs(self, limit: int = 1000) -> tuple[list[RunRow], int]:
        from sqlalchemy import func
        from sqlmodel import col, select
        from zerodeck.store.models import CardPeak, Run
        from zerodeck.store.queries import list_runs

        with self.session() as s:
            total = int(s.exec(select(func.count()).select_from(Run)).one())
            rows = [run_row(r) for r in list_runs(s, limit=limit)]
            # Runs whose summary has no measured peak yet: the largest card peak recorded (host RAM excluded).
            missing = [r.id for r in rows if r.measured_peak_gib is None]
            peaks: dict[int, float] = {}
            if missing:
                q = (select(CardPeak.run_id, func.max(CardPeak.peak_mb))
                     .where(col(CardPeak.run_id).in_(missing), CardPeak.source != "host")
                     .group_by(CardPeak.run_id))
                peaks = {int(rid): float(mb) / 1024 for rid, mb in s.exec(q) if mb is not None}
        rows = [replace(r, measured_peak_gib=peaks[r.id]) if r.id in peaks else r for r in rows]
        return rows, total

    def active_runs(self) -> list[RunRow]:
        from sqlmodel import col, select
        from zerodeck.store.models import Run

        with self.session() as s:
            q = select(Run).where(col(Run.status).in_(["starting", "running"])).order_by(col(Run.id).desc())
            return [run_row(r) for r in s.exec(q)]

    def run_detail(self, run_id: int) -> RunDetail:
        from zerodeck.store.queries import card_peaks, get_run, metrics

        with self.session() as s:
            run = get_run(s, run_id)
            if run is None:
                raise KeyError(run_id)
            row = run_row(run)
            record = run.model_dump()
            peaks = tuple(CardPeakView(p.card, p.peak_mb, p.total_mb) for p in card_peaks(s, run_id))
            losses = tuple(m.loss for m in metrics(s, run_id) if m.loss is not None)
        snapshot = _json(record.get("failure_snapshot"))
        order = [k for k in FIELD_ORDER if k in record] + [k for k in record if k not in FIELD_ORDER]
        fields = tuple((k, _show(record[k])) for k in order if k != "failure_snapshot")
        return RunDetail(row=row, fields=fields, peaks=peaks, losses=losses, failure_snapshot=snapshot,
                         log_tail=tuple(tail(row.log_path, LOG_TAIL_LINES)))

    def run_and_points(self, run_id: int, after_step: int | None = None
                       ) -> tuple[RunRow, list[tuple[int, float | None, float | None]]]:
        """A run and its metric points after `after_step` as (step, loss, samples/s): the live view
        reads only what is new each second, however long the run."""
        from sqlmodel import col, select
        from zerodeck.store.models import MetricPoint
        from zerodeck.store.queries import get_run

        with self.session() as s:
            run = get_run(s, run_id)
            if run is None:
                raise KeyError(run_id)
            row = run_row(run)
            q = select(MetricPoint.step, MetricPoint.loss, MetricPoint.samples_per_s).where(
                MetricPoint.run_id == run_id)
            if after_step is not None:
                q = q.where(MetricPoint.step > after_step)
            points = [(int(st), lo, sp) for st, lo, sp in s.exec(q.order_by(col(MetricPoint.step)))]
        return row, points


    # -- launch / queue / stop ---------------------------------------------------------------
    def launch(self, name: str) -> int:
        """`zerodeck run NAME --detach`: record the run and hand it to its own supervisor."""
        from zerodeck.core.launch.api import start_run

        recipe, path = self.recipe(name)
        with self.session() as s:
            return int(start_run(recipe, path, detach=True, session=s))

    def enqueue(self, name: str) -> int:
        """`zerodeck queue add NAME`: the queue row the runner picks up."""
        from zerodeck.core.launch import queue

        return int(queue.add([self.recipe(name)])[0])

    def stop(self, run_id: int) -> None:
        """`zerodeck stop RUN`: ask the supervisor; returns once the run's processes are gone."""
        from zerodeck.core.launch.api import stop_run

        stop_run(run_id)

    def reconcile(self) -> list[tuple[int, str]]:
        """Runs whose supervisor vanished are re-adopted or marked lost, as every CLI command does."""
        from zerodeck.core.launch.reconcile import reconcile

        with self.session() as s:
            return list(reconcile(s))

    # -- compare ---------------------------------------------------------------------------
    def compare_table(self, run_ids: list[int], diff_only: bool = False,
                      pivot: tuple[str, str, str] | None = None) -> Any:
        """The core compare Table of these runs, as `zerodeck compare` builds it."""
        from zerodeck.core.compare import Selection, comparison_table, load_rows, pivot_table

        with self.session() as s:
            rows = load_rows(s, Selection(refs=tuple(str(i) for i in run_ids)))
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
        return [c.header for c in cols], [[human(r.get(c.key)) for c in cols] for r in table.rows]

    def export(self, run_ids: list[int], fmt: str, out: Path, diff_only: bool = False,
               pivot: tuple[str, str, str] | None = None) -> Path:
        from zerodeck.core.cli.compare_cmd import write_text
        from zerodeck.core.export import render

        table = self.compare_table(run_ids, diff_only, pivot)
        write_text(out, render(table, fmt), fmt)
        return out

    def grid_runs(self, run_id: int) -> list[int]:
        """Every run of the grid the given run was expanded from."""
        from sqlmodel import col, select
        from zerodeck.store.models import Run

        with self.session() as s:
            run = s.get(Run, run_id)
            if run is None or run.grid is None:
                return []
            return [int(i) for i in s.exec(select(Run.id).where(Run.grid == run.grid).order_by(col(Run.id)))]


def progress_of(row: RunRow, losses: tuple[float, ...], last: tuple[int, float | None, float | None] | None,
                now: datetime) -> Progress:
    """Where the run is: the summary's step when the supervisor wrote one, else the last metric point;
    the ETA extrapolates the time per step so far."""
    step = row.steps_done if row.steps_done is not None else (last[0] if last else None)
    sps = row.samples_per_s if row.samples_per_s is not None else (last[2] if last else None)
    eta = None
    dur = row.duration_s(now)
    if step and row.steps_total and dur and row.ended_at is None:
        eta = dur / step * max(0, row.steps_total - step)
    return Progress(run=row, losses=losses, step=step, total=row.steps_total, samples_per_s=sps, eta_s=eta)


def run_row(r: Any) -> RunRow:
    return RunRow(
        id=int(r.id), name=r.name, status=r.status, outcome=r.outcome, reason=r.reason, grid=r.grid,
        device=r.device, cards=r.cards, created_at=r.created_at, started_at=r.started_at, ended_at=r.ended_at,
        predicted_peak_gib=r.predicted_peak_gib, measured_peak_gib=r.measured_peak_gib,
        steps_done=r.steps_done, steps_total=r.steps_total, final_loss=r.final_loss,
        samples_per_s=r.samples_per_s, tokens_per_s=r.tokens_per_s, log_path=r.log_path)


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


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _json(text: Any) -> dict[str, Any]:
    if isinstance(text, dict):
        return text
    try:
        value = json.loads(text or "{}")
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {"value": value}


def _show(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _planner() -> Callable[[Any], Any] | None:
    try:
        from zerodeck.core.plan.verdict import plan_recipe
    except ImportError:
        return None
    return plan_recipe


