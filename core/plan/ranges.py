"""How far a plan's per-card figure can be trusted: the range `plan --json` shows and the verdict reads.

A point figure hides how wrong it may be; a user betting days of 8 cards on it needs the band. Three
bases, from the least to the most informed (`Plan.basis`):

- "model": the physics of `memory.py` alone. The range is the prediction times the 5th and 95th
  percentile of measured / predicted over the published measurements the model is checked against
  (`bench/bench_plan_accuracy.py` prints them; `tests/test_plan_accuracy.py` holds `MODEL_SPREAD`
  to them). Other stacks can sit outside it; that is what calibration and probes are for.
- "calibrated": this machine's finished runs of the same device and backend give measured /
  predicted ratios. The centre is the prediction times their median; the range is their spread
  around the median (min / median .. max / median), never narrower than +-`CAL_FLOOR` (telemetry
  sampling and run-to-run variation) and, from fewer than `CAL_MIN_RUNS` runs, never narrower than
  the model's own spread: one run says where the centre is, not how far runs scatter.
- "probed": a probe (`zerodeck probe`) ran this very configuration on these cards and measured
  each card's peak. The centre is the largest per-card peak; the range runs from it to
  `PROBE_MARGIN` above, for what a few steps cannot show: a peak shorter than the telemetry interval
  and, with variable-length data, a longer batch than any the probe drew.

The verdict reads the high end: `oom` when the figure that must fit exceeds the card, `tight`
when the high end of that figure comes within `memory.TIGHT_FRACTION` of it, `fits` otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from zerodeck.core.plan.memory import TIGHT_FRACTION

Basis = Literal["model", "calibrated", "probed"]

# measured / predicted, 5th and 95th percentile on measured-dev.csv's kept rows (bench_plan_accuracy.py).
MODEL_SPREAD = (0.945, 1.118)
CAL_FLOOR = 0.03
CAL_MIN_RUNS = 3
PROBE_MARGIN = 0.05


@dataclass(frozen=True)
class Band:
    """Ratios around a centre: the range is (centre x low, centre x high)."""

    low: float
    high: float


def model_band() -> Band:
    return Band(*MODEL_SPREAD)


def calibrated_band(spread: tuple[float, float] | None, runs: int) -> Band:
    """The band of calibration ratios around their median, floored as the module docstring says."""
    lo, hi = spread or (1.0, 1.0)
    lo, hi = min(lo, 1.0 - CAL_FLOOR), max(hi, 1.0 + CAL_FLOOR)
    if runs < CAL_MIN_RUNS:
        lo, hi = min(lo, MODEL_SPREAD[0]), max(hi, MODEL_SPREAD[1])
    return Band(lo, hi)


def probed_band() -> Band:
    return Band(1.0, 1.0 + PROBE_MARGIN)


def verdict_with_range(must_fit: float, must_fit_high: float, capacity: float) -> str:
    """fits / tight / oom from the figure that must fit and the high end of its range."""
    if must_fit > capacity:
        return "oom"
    if must_fit_high > capacity * (1 - TIGHT_FRACTION):
        return "tight"
    return "fits"
