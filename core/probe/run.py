"""`zerodeck probe`: a few steps of the real recipe, each card's peak measured, recorded as a run.

The planner's physics is checked against other people's stacks; a probe checks it against this one.
It launches the recipe exactly as `zerodeck run` would (same backend, same cards, through
`core/launch/api.py`), with the maximum steps overridden and the tag `probe`, so it is an ordinary
recorded run: the supervisor records each card's telemetry peak and `measured_peak_gib`, and
calibration (`core/plan/calibration.py`) and the planner's "probed" basis learn from it. On the CPU
the builtin trainer holds each rank to the recipe's `card_gb` (`launch.options.card_limit`), so a
configuration that does not fit fails there as it would on a device. An OOM probe is an outcome,
not an error.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zerodeck.core.errors import BadInput

if TYPE_CHECKING:
    from zerodeck.core.launch.acquire import LocalHost
    from zerodeck.core.recipe.model import Recipe
    from zerodeck.store.api import Store
    from zerodeck.store.records import RunRecord

PROBE_TAG = "probe"
DEFAULT_STEPS = 5
# A probe that has not finished its steps in this long is stopped and reported as it stands.
TIMEOUT_S = 1800.0
POLL_S = 0.5


@dataclass
class ProbeResult:
    """What `zerodeck probe --json` prints (the contract keys first), plus detail."""

    run_id: int
    per_card_peak_gib: list[float]
    step_s: float | None
    predicted_gib: float
    verdict: str | None  # fits / tight / oom; None when no card reported a peak
    outcome: str | None = None
    capacity_gib: float | None = None
    steps: int = 0
    wall_s: float = 0.0
    cards: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "per_card_peak_gib": self.per_card_peak_gib, "step_s": self.step_s,
                "predicted_gib": self.predicted_gib, "verdict": self.verdict, "outcome": self.outcome,
                "capacity_gib": self.capacity_gib, "steps": self.steps, "wall_s": self.wall_s,
                "cards": self.cards}


def probe_recipe(recipe: Recipe, steps: int, **train: Any) -> Recipe:
    """The recipe as probed: its max steps overridden, tagged `probe`, CPU ranks held to their card;
    `train` overrides more of [train] (the frontier's micro_batch or seq_len)."""
    if steps < 1:
        raise BadInput(f"--steps: must be a positive number, got {steps}")
    tags = list(recipe.tags) + ([PROBE_TAG] if PROBE_TAG not in recipe.tags else [])
    new_train = recipe.train.model_copy(update={"max_steps": steps, **train})
    update: dict[str, Any] = {"tags": tags, "train": new_train}
    if recipe.launch.backend == "builtin" and recipe.hardware.device == "cpu":
        update["launch"] = recipe.launch.model_copy(update={"options": {**recipe.launch.options, "card_limit": True}})
    return recipe.model_copy(update=update)


def probe(store: Store, recipe: Recipe, path: Path | None, *, steps: int = DEFAULT_STEPS,
          timeout_s: float = TIMEOUT_S, host: LocalHost | None = None, **train: Any) -> ProbeResult:
    """Launch the probe, wait for it (stopping it cleanly if it overruns), and read its peaks."""
    from zerodeck.core.launch import api
    from zerodeck.core.plan.verdict import plan_recipe

    if recipe.is_grid:
        raise BadInput(f"{recipe.name}: a grid; probe one member (zerodeck recipes expand)")
    probed = probe_recipe(recipe, steps, **train)
    predicted = plan_recipe(probed).total_gib
    t0 = time.monotonic()
    run_id = api.start_run(store, probed, path, detach=True, host=host)  # its cards held like any run's
    run = _wait(store, run_id, steps, timeout_s)
    return result_of(store, run, predicted, time.monotonic() - t0)


def _wait(store: Store, run_id: int, steps: int, timeout_s: float) -> RunRecord:
    from zerodeck.core.launch import api

    deadline = time.monotonic() + timeout_s
    while True:
        run = api.refresh(store, run_id)
        if run.finished:
            return run
        # A backend that ignores max_steps has done its steps when the log says so: stop it cleanly.
        if time.monotonic() > deadline or (run.steps_done or 0) >= steps + 1:
            api.stop_run(store, run_id)
            return api.wait_run(store, run_id, poll=POLL_S)
        time.sleep(POLL_S)


def result_of(store: Store, run: RunRecord, predicted: float, wall_s: float = 0.0) -> ProbeResult:
    """The probe's figures from its recorded run: per-card telemetry peaks, step time, verdict."""
    from zerodeck.core.plan import ranges

    peaks = [p for p in store.card_peaks(run.id) if p.source not in ("host", "swap") and p.peak_mb is not None]
    per_card = [round(float(p.peak_mb or 0.0) / 1024, 3) for p in peaks]
    capacity = run.card_gb
    top = max(per_card) if per_card else None
    if run.outcome == "oom":
        verdict: str | None = "oom"
    elif top is None or not capacity:
        verdict = None
    else:
        verdict = ranges.verdict_with_range(top, top * ranges.probed_band().high, capacity)
    return ProbeResult(run_id=run.id, per_card_peak_gib=per_card, step_s=_step_s(store, run),
                       predicted_gib=round(predicted, 3), verdict=verdict, outcome=run.outcome,
                       capacity_gib=capacity, steps=run.steps_done or 0, wall_s=round(wall_s, 1),
                       cards=[p.card for p in peaks])


def _step_s(store: Store, run: RunRecord) -> float | None:
    """Seconds per optimizer step after the first (which pays for warm-up): from the metric points'
    times, else what the run's summary recorded."""
    points = [m for m in store.metrics(run.id) if m.t is not None]
    if len(points) >= 3:
        first, last = points[1], points[-1]
        if last.step > first.step and last.t is not None and first.t is not None:
            return round((last.t - first.t) / (last.step - first.step), 4)
    return round(run.step_time_s, 4) if run.step_time_s else None
