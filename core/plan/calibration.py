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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zerodeck.store.api import Store

# (device, backend) -> {"factor": median measured/predicted, "runs": how many runs gave it}
CalibrationTable = dict[tuple[str, str], dict[str, Any]]

MIN_RUNS = 1
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
            table[key] = {"factor": statistics.median(rs), "runs": len(rs)}
    return table
