"""The TUI's small parts: drawing helpers, the log follower, telemetry history and the poller."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zerodeck.core.telemetry.model import Card, HostStats, Process, Snapshot
from zerodeck.core.telemetry.sources import DEFAULT_TIMEOUT
from zerodeck.store.api import Store
from zerodeck.tui.services import LogFollower
from zerodeck.tui.telemetry import History, frame_from_snapshot
from zerodeck.tui.view import CardView, Frame
from zerodeck.tui.widgets.text import bar, sparkline

from .tui_support import NoCards, app, drive, until


class Scripted:
    """A telemetry source that runs a function for each read."""

    name = "scripted"

    def __init__(self, read: Callable[[], Snapshot]) -> None:
        self._read = read

    def read(self, timeout: float = DEFAULT_TIMEOUT) -> Snapshot:
        return self._read()


def test_sparkline_scales_and_keeps_the_newest() -> None:
    assert sparkline([0.0, 0.5, 1.0], 3, 0.0, 1.0) == "▁▅█"
    assert sparkline(list(range(100)), 4) == "▁▃▆█"  # the newest four, scaled to their own range
    assert sparkline([], 5) == "" and sparkline([1.0], 0) == ""
    assert sparkline([2.0, 2.0], 2) == "▁▁"  # a flat line, not a division by zero


def test_bar_lengths_and_missing_value() -> None:
    assert bar(0.5, 10).plain == "█" * 5 + "░" * 5
    assert bar(1.7, 4).plain == "████"
    assert bar(None, 4).plain == "····"


def test_log_follower_reads_only_new_complete_lines(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_text("a\nb\n", encoding="utf-8")
    f = LogFollower(str(log), start_lines=1)
    assert f.poll() == ["b"]  # the tail on first read
    with log.open("a", encoding="utf-8") as out:
        out.write("c\npartial")
    assert f.poll() == ["c"]
    with log.open("a", encoding="utf-8") as out:
        out.write(" line\n")
    assert f.poll() == ["partial line"]
    log.write_text("new\n", encoding="utf-8")  # truncated: start again
    assert f.poll() == ["new"]
    assert LogFollower(str(tmp_path / "missing.log")).poll() == []


def test_frame_keys_dies_and_marks_processes() -> None:
    snap = Snapshot(source="npu-smi", cards=[Card(npu=0, chip=0, hbm_used_mb=10, hbm_total_mb=100),
                                             Card(npu=0, chip=1, hbm_used_mb=50, hbm_total_mb=100)],
                    processes=[Process(npu=0, chip=1, pid=42)], host=HostStats(ram_used_mb=5, ram_total_mb=10))
    frame = frame_from_snapshot(snap)
    assert [c.key for c in frame.cards] == ["0.0", "0.1"]
    assert frame.cards[1].pids == (42,) and frame.cards[1].used_frac == 0.5
    assert frame.host is not None and frame.host.total_mb == 10
    ranks = frame_from_snapshot(Snapshot(source="cpu", cards=[Card(npu=1, chip=0, pid=7, memory_used_mb=3,
                                                                   memory_total_mb=6)]))
    assert ranks.cards[0].key == "rank1" and ranks.cards[0].used_frac == 0.5


def test_history_is_bounded_and_forgets_vanished_cards() -> None:
    h = History(size=3)
    for i in range(10):
        h.add(Frame(source="x", cards=(CardView(key="0", used_mb=i, total_mb=10),)))
    assert list(h.cards["0"]) == [0.7, 0.8, 0.9]
    h.add(Frame(source="x", cards=(CardView(key="1", used_mb=1, total_mb=10),)))
    assert set(h.cards) == {"1"}


def test_poller_never_overlaps_and_delivers_the_newest_frame() -> None:
    inflight, most, calls = [0], [0], [0]
    lock = threading.Lock()

    def slow() -> Snapshot:
        with lock:
            inflight[0] += 1
            most[0] = max(most[0], inflight[0])
            calls[0] += 1
            n = calls[0]
        time.sleep(0.03)
        with lock:
            inflight[0] -= 1
        return Snapshot(source="slow", cards=[Card(npu=0, chip=0, memory_used_mb=n, memory_total_mb=1000)])

    a = app(None, poll_interval=0.001)
    a.source = Scripted(slow)

    async def body(pilot: Any) -> None:
        await until(pilot, lambda: calls[0] >= 10)
        await pilot.pause(0.1)

    drive(a, body)
    assert most[0] == 1
    assert a.frames <= calls[0]
    assert a.latest_frame is not None and a.latest_frame.cards[0].used_mb >= 10


def test_poller_backs_off_when_the_source_is_slow() -> None:
    """npu-smi can take seconds on 8 x 910B: the live view must not run it back to back."""
    starts: list[float] = []

    def slow() -> Snapshot:
        starts.append(time.monotonic())
        time.sleep(0.1)
        return Snapshot(source="slow")

    a = app(None, poll_interval=0.01)
    a.source = Scripted(slow)

    async def body(pilot: Any) -> None:
        await until(pilot, lambda: len(starts) >= 4)

    drive(a, body)
    gaps = [b - a_ for a_, b in zip(starts, starts[1:])]
    assert min(gaps) >= 0.18  # twice the read time, not the 0.01 s target


def test_make_app_store_reaches_the_core_without_the_environment(tmp_path: Path, monkeypatch: Any) -> None:
    """The store given is the one the services (and every core call through them) use; the app no
    longer steers core by writing ZERODECK_DB."""
    from zerodeck.tui.app import make_app

    monkeypatch.setenv("ZERODECK_DB", "sqlite://")  # recorded, so the test's change is undone after it
    url = f"sqlite:///{tmp_path / 'other.db'}"
    a = make_app(Store.open(url), source=NoCards())
    assert a.services.store.url == url
    import os

    assert os.environ["ZERODECK_DB"] == "sqlite://"
    assert a.services.runs() == ([], 0)
    assert (tmp_path / "other.db").exists()


def test_a_failed_read_keeps_the_last_cards_marked_stale() -> None:
    """The core Poller's stale marking reaches the screen: old numbers, and why they are old."""
    reads = [0]

    def flaky() -> Snapshot:
        reads[0] += 1
        if reads[0] == 1:
            return Snapshot(source="npu-smi", cards=[Card(npu=0, chip=0, hbm_used_mb=10, hbm_total_mb=100)])
        return Snapshot(source="npu-smi", error="npu-smi: timed out after 10 s")

    a = app(None, poll_interval=0.01)
    a.source = Scripted(flaky)

    async def body(pilot: Any) -> None:
        await pilot.press("2")
        await until(pilot, lambda: a.latest_frame is not None and a.latest_frame.stale)

    drive(a, body)
    frame = a.latest_frame
    assert frame is not None and frame.error == "npu-smi: timed out after 10 s"
    assert [c.key for c in frame.cards] == ["0"] and frame.cards[0].used_mb == 10


def test_card_columns_follow_the_source_and_fit_the_width() -> None:
    from zerodeck.tui.widgets.cards import card_text, header_text

    npu = CardView(key="7.1", health="Warning", used_mb=30000, total_mb=65536, util_pct=97, temp_c=61, power_w=350)
    gpu = CardView(key="0", used_mb=1024, total_mb=143771, util_pct=37, temp_c=40, power_w=300.5)
    cpu = CardView(key="rank0", name="python3.11-with-a-long-name", used_mb=2048, total_mb=32768, util_pct=99.5,
                   pids=(4242,))
    for width in (80, 120, 200):
        heads = {kind: header_text(kind, width).plain for kind in ("npu", "gpu", "cpu")}
        assert all(len(h) <= width for h in heads.values()), heads
        assert "HBM used/total" in heads["npu"] and "AICore%" in heads["npu"] and "Health" in heads["npu"]
        assert "Mem used/total" in heads["gpu"] and "Util%" in heads["gpu"] and "Health" not in heads["gpu"]
        assert "RSS" in heads["cpu"] and "CPU%" in heads["cpu"]
        assert not any(w in heads["cpu"] for w in ("HBM", "AICore", "Power", "Temp"))
        rows = {"npu": card_text("npu", npu, [0.1, 0.4], True, width).plain,
                "gpu": card_text("gpu", gpu, [], False, width).plain,
                "cpu": card_text("cpu", cpu, [], False, width).plain}
        for kind, row in rows.items():
            assert len(row) == len(heads[kind]), (kind, row, heads[kind])  # columns line up
        assert "29.3/64.0G" in rows["npu"] and "97%" in rows["npu"] and "Warning" in rows["npu"]
        assert rows["npu"].endswith(" *")
        assert "4242" in rows["cpu"] and "2.0G" in rows["cpu"] and "100%" in rows["cpu"]
        # each value sits under its header
        assert heads["npu"].index("Health") == rows["npu"].index("Warning")
        assert heads["cpu"].index("PID") + 3 == rows["cpu"].index("4242") + 4  # right-aligned together


def test_frame_lists_processes_under_cards_and_keeps_duplicate_ranks_apart() -> None:
    snap = Snapshot(source="cpu", cards=[Card(npu=0, chip=0, pid=10), Card(npu=0, chip=0, pid=20)],
                    processes=[Process(npu=0, chip=0, pid=10, name="python", memory_mb=500),
                               Process(npu=0, chip=0, pid=11, name="cc1plus", memory_mb=1500)])
    frame = frame_from_snapshot(snap, {10, 11})
    assert [c.key for c in frame.cards] == ["rank0", "rank0@20"]  # two runs' rank 0: two rows
    assert frame.kind == "cpu" and frame.mine == frozenset({"rank0"})
    assert [(p.pid, p.child, p.mine) for p in frame.processes] == [(10, False, True), (11, True, True)]
    assert Frame(source="npu-smi").kind == "npu" and Frame(source="nvidia").kind == "gpu"

