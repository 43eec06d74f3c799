"""Comparison rows: one plain dict per run, built from the store's bulk `RunRecord`s.

Rows are plain dicts keyed by `fields.COLUMNS` keys (plus `summary.*` extras) so the CLI exports,
the TUI's Compare screen and scripts all consume the same objects. The recipe axes (model, method,
ZeRO stage, ...) are run columns written when the run was created (migration 2 filled them for older
runs), so a comparison of ten thousand runs parses no recipe TOML at all.

A resumed run (issue 18) stands for its whole resume chain where that is what a person compares: its
`steps_done` is the furthest step the chain reached, its `wall_time_s` the sum of its runs' wall
times, its `final_loss` the last run's; it also carries `parent_id` and `resumed_from`. A run that was
never resumed keeps its own numbers and carries neither key.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from zerodeck.core.capacity import card_capacity_gib, percent_of
from zerodeck.core.compare.fields import SUMMARY_PREFIX
from zerodeck.core.errors import BadInput
from zerodeck.core.i18n import ngettext
from zerodeck.store.records import PeakSummary, RunRecord

if TYPE_CHECKING:
    from zerodeck.store.api import Store

MB_PER_GIB = 1024.0
# Telemetry sources that measure the host, not a card: used only when nothing else was recorded.
HOST_SOURCES = ("host",)


@dataclass
class Selection:
    """Which runs to compare. No refs, no --all, no tag/grid: the latest run of each recipe."""

    refs: Sequence[str] = ()
    all: bool = False
    tag: str | None = None
    grid: str | None = None
    latest_per_recipe: bool = field(default=False)

    @property
    def implicit_latest(self) -> bool:
        return not self.refs and not self.all and self.tag is None and self.grid is None


def _gib(mb: float | None) -> float | None:
    return None if mb is None else round(mb / MB_PER_GIB, 3)


def _card_peak(peaks: Sequence[PeakSummary]) -> PeakSummary | None:
    cards = [p for p in peaks if p.source not in HOST_SOURCES and p.peak_max_mb is not None]
    pool = cards or [p for p in peaks if p.peak_max_mb is not None]
    if not pool:
        return None
    # Several card sources for one run (rare): the one that saw the most cards speaks.
    return max(pool, key=lambda p: (p.cards, p.peak_max_mb))


def _failure(rec: RunRecord) -> str | None:
    if rec.outcome in (None, "succeeded"):
        return None
    parts = [str(p) for p in (rec.outcome_device, rec.outcome_code) if p]
    if rec.outcome_rank is not None:
        parts.append(f"rank {rec.outcome_rank}")
    return f"{rec.outcome}: {' '.join(parts)}" if parts else str(rec.outcome)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _command(argv: Sequence[str]) -> str | None:
    return shlex.join(str(a) for a in argv) if argv else None


def _env(env: dict[str, str]) -> str | None:
    return " ".join(f"{k}={shlex.quote(str(v))}" for k, v in env.items()) if env else None


def _wall_s(rec: RunRecord) -> float | None:
    started, ended = rec.started_at, rec.ended_at
    return (ended - started).total_seconds() if started and ended else None


def build_row(rec: RunRecord, chain: Sequence[RunRecord] = ()) -> dict[str, Any]:
    """One comparison row from a store record (`Store.run_records`, with its card peaks); `chain`: the
    runs a resumed run continues, oldest first, ending with `rec` (its steps and wall time are theirs)."""
    cards = rec.cards
    peak = _card_peak(rec.card_peaks)
    peak_max = _gib(peak.peak_max_mb) if peak else rec.measured_peak_gib
    peak_mean = _gib(peak.peak_mean_mb) if peak else None
    capacity = card_capacity_gib(device=rec.device, card_gb=rec.card_gb, source=peak.source if peak else None,
                                 total_mb=peak.total_mb if peak else None)
    started = rec.started_at
    own_wall = _wall_s(rec)
    wall = round(own_wall, 1) if own_wall is not None else None
    steps = rec.steps_done
    if len(chain) > 1 and own_wall is not None:
        # Steps are global across a chain (a resumed trainer counts on from its checkpoint): the chain
        # reached its furthest step; the time spent is every run's, gaps between them left out.
        wall = round(sum(w for r in chain if (w := _wall_s(r)) is not None), 1)
    if len(chain) > 1:
        steps = max((r.steps_done for r in chain if r.steps_done is not None), default=None)
    tps = rec.tokens_per_s
    row: dict[str, Any] = {
        "id": rec.id,
        "name": rec.name,
        "grid": rec.grid,
        "tags": ",".join(str(t) for t in rec.tags) if rec.tags else None,
        "model": rec.model,
        "method": rec.method,
        "lora_rank": rec.lora_rank,
        "zero_stage": rec.zero_stage,
        "offload": rec.offload,
        "device": rec.device or None,
        "cards": cards,
        "micro_batch": rec.micro_batch,
        "seq_len": rec.seq_len,
        "data_samples": rec.data_samples,
        "status": rec.status,
        "outcome": rec.outcome,
        "failure": _failure(rec),
        "reason": rec.reason,
        "predicted_peak_gib": rec.predicted_peak_gib,
        "peak_max_gib": peak_max,
        "peak_mean_gib": peak_mean,
        "capacity_gib": capacity,
        "peak_pct": percent_of(peak_max, capacity),
        "samples_per_s": rec.samples_per_s,
        "tokens_per_s_card": round(tps / cards, 2) if tps is not None and cards else None,
        "step_time_s": rec.step_time_s,
        "wall_time_s": wall,
        "steps_done": steps,
        "final_loss": rec.final_loss,
        "started_at": _iso(started),
        "command": _command(rec.argv),
        "env": _env(rec.env),
    }
    if rec.parent_id is not None:
        row["parent_id"] = rec.parent_id
        row["resumed_from"] = rec.resumed_from
    for key, value in rec.summary.items():
        if key in row or key in _PROGRESS_KEYS:
            continue
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            row[f"{SUMMARY_PREFIX}{key}"] = value
    return row


# Run.summary also carries the live-progress figures the supervisor mirrors into Run columns;
# repeating them as summary.* columns would only widen every report.
_PROGRESS_KEYS = frozenset({"steps_total", "tokens_per_s", "train_runtime_s", "eta_s", "percent",
                            "last_loss", "cwd"})


def resolve_refs(store: Store, refs: Sequence[str]) -> list[int]:
    """Run ids from arguments that are ids, or recipe names (their latest run). Unknown ones: BadInput."""
    ids = [int(r) for r in refs if r.isdigit()]
    names = [r for r in refs if not r.isdigit()]
    found = store.existing_run_ids(ids) if ids else set()
    by_name = store.latest_run_ids_by_name(names) if names else {}
    unknown = [r for r in refs if (r.isdigit() and int(r) not in found) or (not r.isdigit() and r not in by_name)]
    if unknown:
        raise BadInput(ngettext("unknown run: {runs} (see `zerodeck runs`)",
                                "unknown runs: {runs} (see `zerodeck runs`)", len(unknown))
                       .format(runs=", ".join(unknown)))
    out: list[int] = []
    for r in refs:
        rid = int(r) if r.isdigit() else by_name[r]
        if rid not in out:
            out.append(rid)
    return out


def load_rows(store: Store, selection: Selection) -> list[dict[str, Any]]:
    """The comparison rows of the selected runs, in run-id order (ids given: in the order given)."""
    ids: list[int] | None = None
    if selection.refs:
        ids = resolve_refs(store, selection.refs)
    elif selection.implicit_latest or selection.latest_per_recipe:
        ids = sorted(store.latest_run_ids_by_name().values())
    records = store.run_records(ids=ids, tag=selection.tag, grid=selection.grid)
    if selection.refs and ids is not None:
        order = {rid: i for i, rid in enumerate(ids)}
        records.sort(key=lambda r: order[r.id])
    chains = resume_chains(store, records)
    rows = [build_row(r, chains.get(r.id, ())) for r in records]
    if len({r.host for r in records if r.host}) > 1:
        # Runs from several servers sharing a store (issue 14): each row says where it ran. A
        # comparison of one server's runs keeps the columns, and the CSV / JSON, it always had.
        for row, rec in zip(rows, records, strict=True):
            row["host"] = rec.host
    return rows


def resume_chains(store: Store, records: Sequence[RunRecord]) -> dict[int, list[RunRecord]]:
    """The resume chain (oldest first, ending with the run) of each resumed run among `records`. The
    ancestors not selected are read in bulk, a generation at a time: most comparisons have no
    resumed run and pay nothing."""
    known = {r.id: r for r in records}
    gone: set[int] = set()  # a deleted parent: its children's chains stop there
    while True:
        missing = {r.parent_id for r in known.values()
                   if r.parent_id is not None and r.parent_id not in known and r.parent_id not in gone}
        if not missing:
            break
        known.update({r.id: r for r in store.run_records(ids=sorted(missing))})
        gone |= missing - known.keys()
    out: dict[int, list[RunRecord]] = {}
    for rec in records:
        if rec.parent_id is None:
            continue
        chain: list[RunRecord] = []
        seen: set[int] = set()
        cur: RunRecord | None = rec
        while cur is not None and cur.id not in seen:
            seen.add(cur.id)
            chain.append(cur)
            cur = known.get(cur.parent_id) if cur.parent_id is not None else None
        out[rec.id] = chain[::-1]
    return out
