"""The stall watchdog: the rule (watchdog.StallWatch, fake clock) and the supervisor acting on it
(scripted jobs, a fake clock, a real SQLite store), as in test_supervisor_scripted.py."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from zerodeck.core.launch.supervisor import Supervisor
from zerodeck.core.launch.watchdog import StallWatch, WatchConfig, minutes
from zerodeck.core.telemetry.model import Card

from .test_supervisor_scripted import DONE, Event, Exit, Harness, no_real_sleep, step  # noqa: F401

CFG = WatchConfig(stall_factor=10.0, stall_floor_s=30.0, stall_startup_s=60.0, on_stall="warn", stall_grace_s=10.0)


def test_a_run_is_stalled_after_the_floor_when_steps_are_fast() -> None:
    w = StallWatch(CFG, 0.0)
    for i in range(1, 11):
        assert w.observe(float(i), i) is None  # one step a second: 10 x 1 s < the 30 s floor
    assert w.limit_s() == 30.0
    assert w.observe(39.9, 10) is None
    assert w.observe(40.0, 10) == "stalled"
    assert w.observe(41.0, 10) is None  # said once
    assert w.observe(42.0, 11) == "progressed" and w.stalled_since is None


def test_slow_steps_stretch_the_limit_to_k_times_the_median() -> None:
    w = StallWatch(CFG, 0.0)
    for i in range(1, 6):
        w.observe(i * 20.0, i)  # 20 s per step: limit 200 s
    w.observe(100.0 + 500.0, 5)  # an outlier never moves the median much
    assert w.limit_s() == 200.0
    w2 = StallWatch(CFG, 0.0)
    for i in range(1, 6):
        w2.observe(i * 20.0, i)
    assert w2.observe(100.0 + 199.0, 5) is None and w2.observe(100.0 + 200.0, 5) == "stalled"


def test_before_the_first_step_signs_of_life_hold_the_stall_off() -> None:
    w = StallWatch(CFG, 0.0)
    for t in range(10, 200, 10):
        assert w.observe(float(t), None, alive=True) is None  # loading: log grows, memory fills
    assert w.observe(249.9, None, alive=False) is None
    assert w.observe(250.0, None, alive=False) == "stalled"  # 60 s start-up limit from the last sign (190)


def test_stop_comes_once_after_the_grace_period() -> None:
    w = StallWatch(dataclasses.replace(CFG, on_stall="stop"), 0.0)
    w.observe(1.0, 1)
    assert w.observe(31.0, 1) == "stalled"
    assert w.observe(40.9, 1) is None
    assert w.observe(41.0, 1) == "stop" and w.observe(50.0, 1) is None
    assert minutes(40.0) == "0.7" and minutes(3600.0) == "60"


class CardsRecorder:
    """Telemetry as the watchdog sees it: the run's cards, memory held and AI Core idle."""

    def start(self) -> None: ...

    def stop(self, failed: bool) -> None: ...

    def run_cards(self) -> list[Card]:
        return [Card(npu=0, chip=0, aicore_pct=0.0, hbm_used_mb=51200.0, hbm_total_mb=65536.0)]


def harness(tmp: Path, history: list[Event], **watch: Any) -> Harness:
    h = Harness(tmp, history)
    h.spec = dataclasses.replace(h.spec, **watch)
    h.sup = Supervisor(h.store, h.run_id, h.spec, spawn=h.spawner, monotonic=h.clock.monotonic,
                       sleep=h.clock.sleep, sweep=h.sweep, make_recorder=lambda _s: CardsRecorder())
    return h


def test_a_hung_run_is_marked_stalled_with_its_cards_and_goes_on_under_warn(tmp_path: Path) -> None:
    seen: list[Any] = []
    h: Harness

    def look() -> None:
        seen.append(h.record().stalled_at)

    history: list[Event] = [(0.5 * s, step(s, 9)) for s in range(1, 5)]
    history += [(40.0, look), (100.0, step(5, 9)), (101.0, look), (102.0, DONE), (102.5, Exit(0))]
    h = harness(tmp_path, history, stall_floor_s=30.0, stall_factor=10.0)
    h.sup.run()
    run = h.record()
    assert run.outcome == "succeeded" and seen[0] is not None and seen[1] is None
    kinds = [e.kind for e in h.store.events(h.run_id)]
    assert kinds == ["stalled", "progressed"]
    stalled = h.store.events(h.run_id)[0].detail
    assert stalled["step"] == 4 and 30.0 <= stalled["idle_s"] <= 32.0
    assert stalled["cards"] == [{"card": "0", "memory_used_mb": 51200.0, "memory_total_mb": 65536.0,
                                 "util_pct": 0.0}]
    assert "stalled: no progress" in h.log.read_text()


def test_on_stall_stop_ends_the_job_after_the_grace_with_the_reason(tmp_path: Path) -> None:
    history: list[Event] = [(0.5 * s, step(s, 9)) for s in range(1, 4)] + [(3600.0, Exit(0))]
    h = harness(tmp_path, history, stall_floor_s=30.0, on_stall="stop", stall_grace_s=15.0)
    h.sup.run()
    run = h.record()
    assert h.spawner.jobs[0].signals == ["SIGTERM"] and h.clock.now < 60
    assert (run.outcome, run.reason) == ("failed", "stalled for 0.8 min at step 3")  # one rank: failed
    assert [e.kind for e in h.store.events(h.run_id)] == ["stalled"]


def test_a_stalled_multi_rank_run_is_a_comm_error(tmp_path: Path) -> None:
    history: list[Event] = [(0.5, step(1, 9)), (3600.0, Exit(0))]
    h = harness(tmp_path, history, stall_floor_s=30.0, on_stall="stop", stall_grace_s=0.0, world_size=8)
    h.sup.run()
    run = h.record()
    assert run.outcome == "comm_error" and run.reason is not None and run.reason.endswith("at step 1")


def test_no_stall_is_called_while_the_final_model_is_saved(tmp_path: Path) -> None:
    # The last step is done; writing a 70B model takes longer than the floor and moves no step.
    history: list[Event] = [(0.5 * s, step(s, 5)) for s in range(1, 6)] + [(300.0, DONE), (301.0, Exit(0))]
    h = harness(tmp_path, history, stall_floor_s=30.0, on_stall="stop", stall_grace_s=0.0)
    h.sup.run()
    assert h.record().outcome == "succeeded" and h.store.events(h.run_id) == []


def test_an_adopted_run_that_hangs_is_stopped_as_stalled(tmp_path: Path) -> None:
    h = harness(tmp_path, [(1.0, step(2, 9)), (3600.0, Exit(0))], stall_floor_s=30.0, on_stall="stop",
                stall_grace_s=5.0, world_size=2)
    with open(h.log, "ab", buffering=0) as log:  # a job the vanished supervisor had started
        h.spawner(["train"], env={}, cwd=None, stdout=log)
        h.sup.adopt()
    run = h.record()
    assert h.clock.now < 60 and h.spawner.jobs[0].signals == ["SIGTERM"]
    assert run.outcome == "comm_error" and (run.reason or "").endswith("at step 2")
    assert [e.kind for e in h.store.events(h.run_id)] == ["stalled"]
