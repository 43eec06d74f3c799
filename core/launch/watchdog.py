"""When a run has stopped making progress: the stall rule, apart from the supervisor that acts on it.

A hung collective (on Ascend, HCCL waits `HCCL_EXEC_TIMEOUT`, 30 minutes by default) leaves every
process alive and every card blocked; nothing fails until the time-out. Progress is the step counter:
a run is stalled when its step has not moved for max(stall_factor x the median seconds per step,
stall_floor_s). Before the first step there is no step time to go by, so any sign of life counts (the
log grew, the cards' memory moved or they are busy) and the limit is stall_startup_s of none.

`StallWatch` is pure (it is handed the time), so tests drive it with a fake clock; the supervisor
feeds it once a second and records what it answers.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass
from typing import Literal

Verdict = Literal["stalled", "progressed", "stop"]
STEP_WINDOW = 64  # the median covers the recent steps: a run's pace changes (eval, sequence packing)


@dataclass(frozen=True)
class WatchConfig:
    stall_factor: float = 10.0
    stall_floor_s: float = 600.0
    stall_startup_s: float = 900.0
    on_stall: str = "warn"
    stall_grace_s: float = 120.0


class StallWatch:
    def __init__(self, config: WatchConfig, now: float) -> None:
        self.config = config
        self.last_progress = now
        self.step: int | None = None
        self.per_step: deque[float] = deque(maxlen=STEP_WINDOW)
        self.stalled_since: float | None = None
        self.stop_sent = False

    def limit_s(self) -> float:
        """Seconds without progress that make the run stalled, as of now."""
        cfg = self.config
        if self.step is None:
            return cfg.stall_startup_s
        if not self.per_step:
            return cfg.stall_floor_s
        return max(cfg.stall_factor * statistics.median(self.per_step), cfg.stall_floor_s)

    def idle_s(self, now: float) -> float:
        return max(0.0, now - self.last_progress)

    def observe(self, now: float, step: int | None, alive: bool = False) -> Verdict | None:
        """`stalled` when the run has just gone past its limit, `progressed` when a stalled run moves
        again, `stop` once (on_stall = "stop") when the grace period after `stalled` is over."""
        moved = False
        if step is not None and (self.step is None or step > self.step):
            if self.step is not None:  # the first step's wait includes start-up: not a step time
                self.per_step.append((now - self.last_progress) / (step - self.step))
            self.step = step
            moved = True
        elif self.step is None and alive:
            moved = True
        if moved:
            self.last_progress = now
            if self.stalled_since is not None:
                self.stalled_since = None
                self.stop_sent = False
                return "progressed"
            return None
        if self.stalled_since is None:
            if self.idle_s(now) >= self.limit_s():
                self.stalled_since = now
                return "stalled"
            return None
        if (self.config.on_stall == "stop" and not self.stop_sent
                and now - self.stalled_since >= self.config.stall_grace_s):
            self.stop_sent = True
            return "stop"
        return None


def minutes(seconds: float) -> str:
    """`stalled for N min`: whole minutes from 10 on, one decimal below (a test's floor is seconds)."""
    m = seconds / 60.0
    return f"{m:.0f}" if m >= 10 else f"{m:.1f}"
