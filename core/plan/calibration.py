"""Calibration of the memory model from this machine's own recorded runs.

The physics in `memory.py` is fitted on published figures from other machines; this machine's
driver, allocator and launcher settings shift the real peak by a steady factor. For every finished
run that recorded both a prediction and a measured per-card peak, the ratio measured / predicted is
taken; the median ratio per (device, backend) is the factor. It is applied to the prediction and
shown beside it, never folded into the raw figure. Runs that died of OOM are left out: their peak
is the card's capacity, not the job's need.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zerodeck.store.api import Store

# (device, backend) -> {"factor": median measured/predicted, "runs": how many runs gave it}
CalibrationTable = dict[tuple[str, str], dict[str, Any]]

MIN_RUNS = 1
PROBE_TAG = "probe"
# A ratio outside this range is a broken record (a wrong unit, a peak of a different job), not drift.
SANE = (0.3, 3.0)


def ratios(rows: Sequence[tuple[str, str, float | None, float | None, str | None]]
           ) -> dict[tuple[str, str], list[float]]:
    """(device, backend, predicted, measured, outcome) rows -> ratios per (device, backend)."""
    out: dict[tuple[str, str], list[float]] = {}
    for device, backend, predicted, measured, outcome in rows:
        if not predicted or not measured or predicted <= 0 or outcome in ("oom", "lost", "killed"):
            continue
        r = measured / predicted
        if SANE[0] <= r <= SANE[1]:
            out.setdefault((device or "", backend or ""), []).append(r)
    return out


def calibration_table(store: Store | None) -> CalibrationTable:
    """Factor and run count per (device, backend) from the store's runs; empty without a store."""
    if store is None:
        return {}
    table: CalibrationTable = {}
    for key, rs in ratios(store.calibration_rows()).items():
        if len(rs) >= MIN_RUNS:
            med = statistics.median(rs)
            # How far this machine's runs scatter around the factor (the calibrated range, ranges.py).
            table[key] = {"factor": med, "runs": len(rs), "spread": (min(rs) / med, max(rs) / med)}
    return table


@dataclass(frozen=True)
class ProbeMeasurement:
    """The newest probe of one configuration: its run, the largest per-card peak and its outcome."""

    run_id: int
    peak_gib: float | None
    outcome: str | None


def probe_key(name: str, backend: str, device: str, cards: int, micro_batch: int | None,
              seq_len: int | None, zero_stage: int | None, offload: str | None) -> tuple[Any, ...]:
    return (name, backend, device, cards, micro_batch, seq_len, zero_stage, offload)


def probe_measurements(store: Store | None) -> dict[tuple[Any, ...], ProbeMeasurement]:
    """The newest finished probe run (tagged `probe`) per configuration; empty without a store.

    An OOM probe counts: it says this configuration does not fit these cards."""
    if store is None:
        return {}
    out: dict[tuple[Any, ...], ProbeMeasurement] = {}
    for r in store.run_records(tag=PROBE_TAG):
        if not r.finished or r.outcome not in ("succeeded", "oom", "killed"):
            continue
        if r.outcome != "oom" and r.measured_peak_gib is None:
            continue
        key = probe_key(r.name, r.backend, r.device, r.cards, r.micro_batch, r.seq_len, r.zero_stage, r.offload)
        out[key] = ProbeMeasurement(r.id, r.measured_peak_gib, r.outcome)  # id order: the newest wins
    return out
