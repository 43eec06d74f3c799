"""The fit frontier: the largest micro_batch or seq_len that fits, from the planner or confirmed by probes.

From the planner alone it is the largest value whose must-fit figure, at the high end of its range
(`core/plan/ranges.py`), stays within the card. With probes it is a bisection seeded by that
prediction: probe the predicted value; double while probes fit and nothing above is known to fail,
halve while they run out of memory, then bisect between the largest fit and the smallest OOM, at
most `MAX_PROBES` probes. Every probe is a recorded run; an OOM probe is an outcome of the search.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from zerodeck.core.errors import BadInput
from zerodeck.core.plan import ranges
from zerodeck.core.plan.memory import PlanInput, estimate

Axis = Literal["micro_batch", "seq_len"]
AXES: tuple[Axis, ...] = ("micro_batch", "seq_len")
MAX_PROBES = 3
# The planner's search stops here (beyond, the activation terms would be extrapolated far).
LIMITS: dict[Axis, int] = {"micro_batch": 1024, "seq_len": 1 << 20}


@dataclass
class FrontierProbe:
    value: int
    run_id: int
    outcome: str | None
    fits: bool
    peak_gib: float | None


@dataclass
class Frontier:
    axis: Axis
    planned: int | None  # the planner's largest value (None: not even 1 fits)
    value: int | None  # the answer: confirmed by probes when there are any, else the planner's
    first_oom: int | None = None  # the smallest value a probe saw fail
    basis: ranges.Basis = "model"
    probes: list[FrontierProbe] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"axis": self.axis, "value": self.value, "planned": self.planned, "first_oom": self.first_oom,
                "basis": self.basis, "probes": [vars(p) for p in self.probes]}


def planned_frontier(inp: PlanInput, axis: Axis, factor: float = 1.0) -> int | None:
    """The largest value of `axis` whose must-fit figure x the range's high end fits the card."""
    if axis not in AXES:
        raise BadInput(f"--frontier: {axis!r} is not one of {', '.join(AXES)}")
    high = ranges.MODEL_SPREAD[1]

    def ok(v: int) -> bool:
        return estimate(inp.with_(**{axis: v})).hard * factor * high <= inp.card_gb

    if not ok(1):
        return None
    lo, hi = 1, 2
    limit = LIMITS[axis]
    while hi <= limit and ok(hi):
        lo, hi = hi, hi * 2
    hi = min(hi, limit + 1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


def probed_frontier(axis: Axis, planned: int | None, run_probe: Callable[[int], FrontierProbe],
                    max_probes: int = MAX_PROBES) -> Frontier:
    """Bisection seeded by the planner's value; `run_probe(value)` launches one probe."""
    out = Frontier(axis=axis, planned=planned, value=None, basis="probed")
    lo: int | None = None  # largest value seen to fit
    hi: int | None = None  # smallest value seen to fail
    cand = max(1, planned or 1)
    tried: set[int] = set()
    while len(out.probes) < max_probes and cand not in tried:
        tried.add(cand)
        p = run_probe(cand)
        out.probes.append(p)
        if p.fits:
            lo = cand if lo is None else max(lo, cand)
        else:
            hi = cand if hi is None else min(hi, cand)
        if hi is not None and lo is not None and hi - lo <= 1:
            break
        if hi is None:
            cand = (lo or cand) * 2
        elif lo is None:
            if hi == 1:
                break
            cand = max(1, hi // 2)
        else:
            cand = (lo + hi) // 2
    out.value, out.first_oom = lo, hi
    return out
