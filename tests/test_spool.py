"""The supervisor's spool (core/launch/spool.py) on a real SQLite store made to blink.

The store "blinks" through a SQLAlchemy seam on its real engine: while the test says the server is
away, every statement raises the `StoreUnreachable` a PostgreSQL store raises when its server is
down, exactly where the driver would fail. The real-server outage (PostgreSQL stopped and started
under a running demo job) is in test_store_outage.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from zerodeck.core.launch.spool import SPOOL_FILE, SpooledStore
from zerodeck.store.api import Store
from zerodeck.store.errors import StoreUnreachable
from zerodeck.store.records import CardPeakRecord, SampleRecord

from .test_supervisor_scripted import DONE, Event, Exit, FakeClock, Harness, step


class Blink:
    """Makes every statement on a store's engine fail as an unreachable server's would."""

    def __init__(self, store: Store, down: Callable[[], bool] | None = None) -> None:
        self.is_down = down or (lambda: self.flag)
        self.flag = False
        self.attempts = 0
        event.listen(store.engine, "before_cursor_execute", self._check)
        self.store = store

    def _check(self, *_args: Any) -> None:
        if self.is_down():
            self.attempts += 1
            raise StoreUnreachable("store unreachable: server/db (connection refused)")

    def remove(self) -> None:
        event.remove(self.store.engine, "before_cursor_execute", self._check)


class LeaseLost(Exception):
    """Stands for the fencing error: any error that is not "unreachable" must pass through."""


def make_store(tmp: Path, name: str = "s.db") -> tuple[Store, int]:
    store = Store.open(f"sqlite:///{tmp / name}")
    store.save_snapshot(hash="h", name="r", toml="", source_path=None)
    run_id = store.add_run(name="r", recipe_hash="h", backend="builtin", device="cpu", cards=1, status="queued")
    return store, run_id


def writes(s: Store, run_id: int) -> None:
    """A run's life as the supervisor writes it."""
    s.update_run(run_id, status="starting", supervisor_pid=1)
    s.update_run(run_id, status="running", pgid=2)
    for k in range(1, 6):
        s.upsert_metrics(run_id, [{"step": k, "loss": 6.0 - k, "t": k * 0.1}])
        s.update_run(run_id, steps_done=k, steps_total=5, final_loss=6.0 - k)
    s.upsert_metrics(run_id, [{"step": 5, "lr": 0.001}])  # a later line adds a column to step 5
    s.replace_telemetry(run_id, [SampleRecord(0.0, "cpu", "rank0", 100.0)], [CardPeakRecord("cpu", "rank0", 100.0)])
    s.add_event(run_id, "stalled", {"summary": "no progress", "step": 3})
    s.replace_telemetry(run_id, [SampleRecord(0.0, "cpu", "rank0", 100.0), SampleRecord(1.0, "cpu", "rank0", 300.0)],
                        [CardPeakRecord("cpu", "rank0", 300.0, 100.0)])
    s.add_event(run_id, "progressed", {"summary": "step 4"})
    s.update_run(run_id, measured_peak_gib=0.293)
    s.finish_run(run_id, "succeeded", None, exit_code=0, steps_done=5)


def record(store: Store, run_id: int) -> dict[str, Any]:
    """What a reader sees of the run, without the times the clock gives."""
    run = store.run(run_id)
    assert run is not None
    keep = ("status", "outcome", "reason", "exit_code", "steps_done", "steps_total", "final_loss",
            "measured_peak_gib", "supervisor_pid", "pgid")
    return {
        "run": {k: getattr(run, k) for k in keep},
        "ended": run.ended_at is not None,
        "metrics": [(m.step, m.loss, m.lr) for m in store.metrics(run_id)],
        "peaks": store.card_peaks(run_id),
        "samples": store.memory_series(run_id),
        "events": [(e.kind, e.detail) for e in store.events(run_id)],
    }


def spool_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_writes_buffered_during_an_outage_land_in_order_with_the_same_record(tmp_path: Path) -> None:
    plain, plain_id = make_store(tmp_path, "plain.db")
    writes(plain, plain_id)
    store, run_id = make_store(tmp_path)
    blink = Blink(store)
    clock = FakeClock()
    spool = SpooledStore(store, tmp_path / SPOOL_FILE, monotonic=clock.monotonic, sleep=clock.sleep)
    spool.update_run(run_id, status="starting", supervisor_pid=1)  # lands at once
    blink.flag = True  # the rest of the run's life happens while the server is away
    spool.update_run(run_id, status="running", pgid=2)
    for k in range(1, 6):
        spool.upsert_metrics(run_id, [{"step": k, "loss": 6.0 - k, "t": k * 0.1}])
        spool.update_run(run_id, steps_done=k, steps_total=5, final_loss=6.0 - k)
    spool.upsert_metrics(run_id, [{"step": 5, "lr": 0.001}])
    spool.replace_telemetry(run_id, [SampleRecord(0.0, "cpu", "rank0", 100.0)],
                            [CardPeakRecord("cpu", "rank0", 100.0)])
    spool.add_event(run_id, "stalled", {"summary": "no progress", "step": 3})
    spool.replace_telemetry(run_id, [SampleRecord(0.0, "cpu", "rank0", 100.0),
                                     SampleRecord(1.0, "cpu", "rank0", 300.0)],
                            [CardPeakRecord("cpu", "rank0", 300.0, 100.0)])
    spool.add_event(run_id, "progressed", {"summary": "step 4"})
    spool.update_run(run_id, measured_peak_gib=0.293)
    spool.finish_run(run_id, "succeeded", None, exit_code=0, steps_done=5)
    # Everything after the first write is on disk, in the order it was made, and nothing in the store.
    lines = spool_lines(tmp_path / SPOOL_FILE)
    assert [e["seq"] for e in lines] == list(range(1, 19))
    assert lines[0]["op"] == "update_run" and lines[-1]["op"] == "finish_run"
    assert spool.pending == 18 and not spool.reachable
    # While the store is away the supervisor's reads answer from what it knows.
    assert spool.stop_requested(run_id) is False
    assert [p.peak_mb for p in spool.card_peaks(run_id)] == [300.0]
    blink.flag = False
    assert spool.settle(timeout=60)
    assert not (tmp_path / SPOOL_FILE).exists()
    assert record(store, run_id) == record(plain, plain_id)
    assert record(store, run_id)["run"]["status"] == "finished"


def test_retries_back_off_while_the_server_is_away(tmp_path: Path) -> None:
    store, run_id = make_store(tmp_path)
    blink = Blink(store)
    clock = FakeClock()
    spool = SpooledStore(store, tmp_path / SPOOL_FILE, monotonic=clock.monotonic, sleep=clock.sleep)
    blink.flag = True
    for k in range(120):  # two minutes of one write and one stop check a second
        spool.update_run(run_id, steps_done=k)
        spool.stop_requested(run_id)
        clock.sleep(1.0)
    # 0.5 s doubling to 5 s: a few attempts early, then one each 5 s; never one per write.
    assert 20 <= blink.attempts <= 35
    blink.flag = False
    clock.sleep(5.0)
    assert spool.stop_requested(run_id) is False  # the tick that finds the store back replays first
    assert spool.pending == 0 and store.run(run_id).steps_done == 119  # type: ignore[union-attr]


def test_a_crash_mid_replay_then_a_new_supervisor_replays_without_doubling(tmp_path: Path) -> None:
    plain, plain_id = make_store(tmp_path, "plain.db")
    writes(plain, plain_id)
    store, run_id = make_store(tmp_path)

    class Crashing:
        """Applies writes, and dies right after the n-th lands (before the spool can mark it)."""

        def __init__(self, n: int) -> None:
            self.left = n

        def __getattr__(self, name: str) -> Any:
            real = getattr(store, name)

            def call(*args: Any, **kwargs: Any) -> Any:
                real(*args, **kwargs)
                self.left -= 1
                if self.left == 0:
                    raise SystemExit("killed mid-replay")

            return call

    blink = Blink(store)
    blink.flag = True
    clock = FakeClock()
    first = SpooledStore(store, tmp_path / SPOOL_FILE, monotonic=clock.monotonic, sleep=clock.sleep)
    writes(first, run_id)
    assert first.pending == 19
    blink.flag = False
    # The replay writes the first 13 writes (state changes, points, progress) as one upsert of the
    # points and one update, skips the telemetry the later one replaces, and dies right after the
    # event "stalled" lands, before marking it.
    first.writer = Crashing(n=3)
    with pytest.raises(SystemExit):
        first.settle(timeout=60)
    assert record(store, run_id)["events"] == [("stalled", {"summary": "no progress", "step": 3})]
    second = SpooledStore(store, tmp_path / SPOOL_FILE)
    assert 0 < second.pending < 19
    assert second.drain()
    assert record(store, run_id) == record(plain, plain_id)  # one "stalled", not two; points once each
    assert not (tmp_path / SPOOL_FILE).exists()


def test_a_torn_last_line_is_cut_off_and_the_rest_replays(tmp_path: Path) -> None:
    store, run_id = make_store(tmp_path)
    blink = Blink(store)
    blink.flag = True
    path = tmp_path / SPOOL_FILE
    first = SpooledStore(store, path)
    first.update_run(run_id, status="running", pgid=7)
    first.upsert_metrics(run_id, [{"step": 1, "loss": 2.0}])
    whole = path.read_bytes()
    with open(path, "ab") as fh:  # the process died in the middle of its next append
        fh.write(b'{"seq":3,"op":"finish_run","args":[1,"succ')
    second = SpooledStore(store, path)
    assert second.pending == 2 and path.read_bytes() == whole
    second.upsert_metrics(run_id, [{"step": 2, "loss": 1.5}])  # the next write starts on a line of its own
    assert [e["seq"] for e in spool_lines(path)] == [1, 2, 3]
    blink.flag = False
    assert second.settle(timeout=5)
    run = store.run(run_id)
    assert run is not None and (run.status, run.pgid) == ("running", 7)
    assert [m.step for m in store.metrics(run_id)] == [1, 2]


def test_other_errors_pass_through_and_are_never_buffered(tmp_path: Path) -> None:
    store, run_id = make_store(tmp_path)

    class Fenced:
        def update_run(self, *_args: Any, **_kwargs: Any) -> None:
            raise LeaseLost(f"run {run_id}: the lease was taken over")

    spool = SpooledStore(store, tmp_path / SPOOL_FILE, writer=Fenced())
    with pytest.raises(LeaseLost):
        spool.update_run(run_id, status="running")
    assert spool.pending == 0 and not (tmp_path / SPOOL_FILE).exists()


def test_a_fenced_error_during_replay_stops_the_replay_and_keeps_the_rest(tmp_path: Path) -> None:
    store, run_id = make_store(tmp_path)
    blink = Blink(store)
    blink.flag = True
    clock = FakeClock()
    spool = SpooledStore(store, tmp_path / SPOOL_FILE, monotonic=clock.monotonic, sleep=clock.sleep)
    spool.update_run(run_id, status="running")
    spool.finish_run(run_id, "succeeded")
    blink.flag = False

    class Fenced:
        def update_run(self, *_args: Any, **_kwargs: Any) -> None:
            raise LeaseLost("lease lost")

    spool.writer = Fenced()
    clock.sleep(10)
    with pytest.raises(LeaseLost):
        spool.drain()
    assert spool.pending == 2  # nothing written, nothing dropped: the supervisor stops writing
    assert store.run(run_id).status == "queued"  # type: ignore[union-attr]


def test_supervisor_run_through_an_outage_ends_as_without_one(tmp_path: Path) -> None:
    """A scripted job whose store goes away at its second step and comes back 40 s after it ended:
    the job is never stopped, and the record is the one a run without an outage leaves."""

    def history() -> list[Event]:
        h: list[Event] = [(0.5 * s, step(s)) for s in range(1, 6)]
        return h + [(3.0, DONE), (3.2, Exit(0))]

    (tmp_path / "plain").mkdir()
    plain = Harness(tmp_path / "plain", history())
    plain.sup.run()
    (tmp_path / "blink").mkdir()
    h = Harness(tmp_path / "blink", history())
    blink = Blink(h.store, down=lambda: 1.2 <= h.clock.now < 45.0)
    h.sup.run()
    assert h.spawner.jobs[0].returncode == 0 and h.sweep.terminated == []
    assert (h.run_dir / SPOOL_FILE).exists() and h.sup.store.pending > 0
    assert h.sup.settle()
    blink.remove()
    assert not (h.run_dir / SPOOL_FILE).exists()
    mine, theirs = record(h.store, h.run_id), record(plain.store, plain.run_id)
    for side in (mine, theirs):
        side["run"].pop("supervisor_pid")
        side["run"].pop("pgid")
    assert mine == theirs and mine["run"]["outcome"] == "succeeded"
    assert [m[0] for m in mine["metrics"]] == [1, 2, 3, 4, 5]
    text = h.log.read_text()
    assert "store unreachable" in text and "store reachable again" in text
    assert text.index("store reachable again") > text.index("finished: succeeded")


def test_a_spool_left_behind_is_replayed_before_the_conclusion(tmp_path: Path) -> None:
    """A supervisor that died with its record still buffered (the job had ended): the reconciler's
    conclusion replays the spool first, and the outcome recorded there stands."""
    h = Harness(tmp_path, [(0.5, step(1)), (1.0, DONE), (1.1, Exit(0))])
    blink = Blink(h.store, down=lambda: h.clock.now >= 0.7)
    h.sup.run()
    assert h.sup.store.pending > 0
    blink.remove()
    from zerodeck.core.launch.reconcile import conclude

    run = h.store.run(h.run_id)
    assert run is not None and run.status == "running"
    assert conclude(h.store, run) == "succeeded"
    after = h.store.run(h.run_id)
    assert after is not None and (after.outcome, after.exit_code) == ("succeeded", 0)  # the supervisor's record
    assert not (h.run_dir / SPOOL_FILE).exists()


def test_one_upsert_of_many_points_merges_a_step_reported_twice(tmp_path: Path) -> None:
    """What a replayed spool hands the store: many points at once, a step again with more columns."""
    store, run_id = make_store(tmp_path)
    store.upsert_metrics(run_id, [{"step": 1, "loss": 2.0}, {"step": 1, "lr": 0.1, "loss": None},
                                  {"step": 2, "loss": 1.0}])
    store.upsert_metrics(run_id, [{"step": 2, "grad_norm": 3.0, "loss": None}, {"step": 3, "loss": 0.5}])
    assert [(m.step, m.loss, m.lr, m.grad_norm) for m in store.metrics(run_id)] == [
        (1, 2.0, 0.1, None), (2, 1.0, None, 3.0), (3, 0.5, None, None)]


def test_a_stop_by_signal_works_while_the_store_is_away_and_its_end_is_recorded(tmp_path: Path) -> None:
    """The stored stop request cannot be read during an outage; SIGTERM to the supervisor still stops
    the job, and the supervisor waits for the store to record `killed` (a second signal would give up)."""
    from zerodeck.core.launch.supervisor import _on_stop

    h: Harness

    def signal_stop() -> None:
        _on_stop(h.sup)(15, None)

    h = Harness(tmp_path, [(0.5, step(1)), (2.0, step(2)), (3.0, signal_stop), (600.0, Exit(0))])
    blink = Blink(h.store, down=lambda: 1.0 <= h.clock.now < 60.0)
    h.sup.run()
    assert h.sweep.terminated and h.sup.store.pending > 0
    assert h.sup.settle()
    blink.remove()
    run = h.record()
    assert (run.status, run.outcome, run.reason) == ("finished", "killed", "stopped on request")
    assert [m.step for m in h.store.metrics(h.run_id)] == [1, 2]


def test_every_other_store_method_runs_on_the_inner_stores_sessions(tmp_path: Path) -> None:
    """A store that checks each write (the claim token's fencing does it in `_session`) checks the
    writes and reads made through the spool's other methods too."""
    base, run_id = make_store(tmp_path)
    opened: list[str] = []

    class Checking(Store):
        def _session(self) -> Any:
            opened.append("session")
            return super()._session()

        def _rows(self, query: Any) -> list[Any]:
            opened.append("rows")
            return super()._rows(query)

    spool = SpooledStore(Checking(base.engine, base.url), tmp_path / SPOOL_FILE)
    spool.request_stop(run_id)  # not one of the spool's own writes: Store's, on the inner session
    assert spool.events(run_id) == [] and opened == ["session", "rows"]
