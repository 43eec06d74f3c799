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
from typing import Any

MIN_RUNS = 1
# A ratio outside this range is a broken record (a wrong unit, a peak of a different job), not drift.
SANE = (0.3, 3.0)


def ratios(rows: list[tuple[str, str, float | None, float | None, str | None]]) -> dict[tuple[str, str], list[float]]:
    """(device, backend, predicted, measured, outcome) rows -> ratios per (device, backend)."""
    out: dict[tuple[str, str], list[float]] = {}
    for device, backend, predicted, measured, outcome in rows:
        if not predicted or not measured or predicted <= 0 or outcome in ("oom", "lost", "killed"):
            continue
        r = measured / predicted
        if SANE[0] <= r <= SANE[1]:
            out.setdefault((device or "", backend or ""), []).append(r)
    return out


def calibration_table() -> dict[tuple[str, str], dict[str, Any]]:
    """Factor and run count per (device, backend) from the store; empty when there is no store data."""
    import os

    from zerodeck.store.location import data_home

    if not os.environ.get("ZERODECK_DB") and not (data_home() / "zerodeck.db").exists():
        return {}  # planning never creates a store
    try:
        from sqlalchemy import select
        from zerodeck.store.engine import open_store
        from zerodeck.store.models import Run

        # Plain column tuples: the TUI plans every catalog row, and ORM rows for 10,000 runs cost ~0.5 s.
        query = select(Run.device, Run.backend, Run.predicted_peak_gib, Run.measured_peak_gib, Run.outcome).where(
            Run.measured_peak_gib != None  # noqa: E711
        )
        with open_store() as session:
            rows = [tuple(r) for r in session.execute(query).all()]
    except Exception:  # no store yet, or an unreadable one: plan without calibration
        return {}
    table = {}
    for key, rs in ratios(rows).items():
        if len(rs) >= MIN_RUNS:
            table[key] = {"factor": statistics.median(rs), "runs": len(rs)}
    return table


def calibration_for(device: str, backend: str) -> dict[str, Any] | None:
    return calibration_table().get((device, backend))
