"""The live view: a long run's log tail follows to the end, step lines read as text, the status rows
fit 80 columns, elapsed time counts from the start, curves are drawn, and a CPU run's rank children
(a compiler under rank 0) are listed under their rank, never as cards."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Static
from zerodeck.core.telemetry.sources import CpuRankSource
from zerodeck.tui.screens.live import progress_text, status_text
from zerodeck.tui.telemetry import frame_from_snapshot
from zerodeck.tui.view import Curves, Progress
from zerodeck.tui.widgets.curves import CurvesPlot
from zerodeck.tui.widgets.text import log_line

from .tui_support import NOW, add_running, app, drive, store, text_of, until


def _step(i: int, total: int = 500) -> str:
    return json.dumps({"zerodeck": "step", "step": i, "total_steps": total, "loss": round(3.0 / i, 4),
                       "lr": 1e-4, "samples_per_s": 12.3, "tokens_per_s": 1574.4, "peak_mem_mb": 812.5,
                       "rank": 0, "t": i * 0.5})


def test_step_json_reads_as_text() -> None:
    assert log_line(_step(220)) == "step 220/500  loss 0.0136  lr 1e-4  12.3 samples/s  peak 0.8G"
    assert log_line("[rank0]: " + _step(3)).startswith("step 3/500  loss 1.0000")
    done = json.dumps({"zerodeck": "done", "steps": 20, "train_runtime": 7.1, "train_loss": 4.2})
    assert log_line(done) == "done: 20 steps  in 7.1s  train loss 4.2000"
    assert log_line('{"zerodeck": "step", "step": 1') == '{"zerodeck": "step", "step": 1'  # half written
    assert log_line("plain text") == "plain text"


def test_long_log_tail_follows_to_the_end_even_when_written_while_hidden(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_text("".join(_step(i) + "\n" for i in range(1, 221)), encoding="utf-8")
    run_id = add_running(log, name="a-very-long-recipe-name-qwen2.5-32b-lora-zero3-offload-cpu")
    a = app(None)  # starts in the catalog: the first lines reach the app while Live is not shown

    async def body(pilot: Any) -> None:
        await until(pilot, lambda: a.progress is not None and len(a.log_lines) > 0)
        await pilot.pause(0.2)
        await pilot.press("2")
        await pilot.pause(0.2)
        tail = a.screen.query_one("#log")
        await until(pilot, lambda: bool(tail.shown()) and tail.shown()[-1].startswith("step 220/500"))
        shown = tail.shown()
        assert len(shown) >= 4 and shown[-2].startswith("step 219/500")
        assert all(len(line) <= 80 for line in shown)
        for i in range(221, 261):  # the run goes on: the tail keeps up
            with log.open("a", encoding="utf-8") as f:
                f.write(_step(i) + "\n")
        await until(pilot, lambda: tail.shown()[-1].startswith("step 260/500"))
        await pilot.press("1")
        await pilot.pause(0.2)
        with log.open("a", encoding="utf-8") as f:
            f.write(_step(261) + "\n")
        await until(pilot, lambda: any("step" in ln and '"step": 261' in ln for ln in a.log_lines))
        await pilot.press("2")
        await pilot.pause(0.2)
        tail = a.screen.query_one("#log")
        await until(pilot, lambda: tail.shown()[-1].startswith("step 261/500"))
        progress = text_of(a.screen.query_one("#progress", Static))
        assert f"run {run_id} " in progress and "30s" in progress  # elapsed since started_at, not 0s
        assert all(len(line) < 80 for line in progress.splitlines())

    drive(a, body)


def test_with_regular_telemetry_the_run_is_drawn_with_the_next_frame_and_no_line_is_lost(tmp_path: Path) -> None:
    """At 1 Hz telemetry the run's news waits for the next frame (one redraw, not two); the tail still
    gets every line once, in order, and the progress line the newest step."""
    from zerodeck.core.telemetry.sources import ReplaySource

    from .tui_support import NPU8

    log = tmp_path / "run.log"
    log.write_text("".join(_step(i) + "\n" for i in range(1, 6)), encoding="utf-8")
    add_running(log)
    a = app(None, mode="live")
    a.source = ReplaySource("npu-smi", [NPU8.read_text(encoding="utf-8")])
    a.poll_interval = 0.3

    async def body(pilot: Any) -> None:
        screen = a.screen
        await until(pilot, lambda: len(screen._frame_times) == 3)
        held = 0
        for i in range(6, 31):
            with log.open("a", encoding="utf-8") as f:
                f.write(_step(i) + "\n")
            await pilot.pause(0.05)
            held += screen._held is not None
            assert screen._held is None or screen._hold_timer is not None  # held only until a frame
        assert held  # the news did wait for frames
        tail = screen.query_one("#log")
        await until(pilot, lambda: tail.lines[-1:] and '"step": 30' in tail.lines[-1])
        steps = [json.loads(ln)["step"] for ln in tail.lines]
        assert steps == list(range(1, 31))
        store().update_run(a.followed_run, steps_done=30)
        await until(pilot, lambda: "step 30/20" in text_of(screen.query_one("#progress", Static)))

    drive(a, body, size=(120, 40))


def test_status_rows_fit_80_columns_and_elapsed_counts_from_the_start() -> None:
    add_running(Path("/nonexistent.log"), name="x" * 120)
    run = store().runs()[0]
    run = replace(run, started_at=NOW - timedelta(minutes=3, seconds=7))
    p = Progress(run=run, losses=(2.0, 1.5), step=None, total=500, samples_per_s=None)
    text = progress_text(p, NOW, 80).plain
    lines = text.splitlines()
    assert len(lines) == 2 and all(len(line) <= 79 for line in lines), lines
    assert "3m07s" in lines[0] and "step -/500" in lines[0] and "…" in lines[0]
    assert lines[1].startswith(" loss 1.5000")


def test_curves_render_their_points() -> None:
    loss = tuple((i, 3.0 / (1 + i / 20)) for i in range(1, 221))
    curves = Curves(loss=loss, eval_loss=((100, 1.5), (200, 1.2)),
                    samples_per_s=tuple((i, 12.0 + i % 5) for i in range(1, 221)))
    plot = CurvesPlot("loss")
    plot.show(curves)
    text = plot.plot_text(78, 14)
    assert "loss 0.2500  eval loss 1.2000" in text  # the newest values, in the title
    assert "eval loss" in text and "step" in text and "220" in text  # the x axis reaches the newest step
    assert sum(ch in text for ch in "⠁⠂⠄⡀⠈⠐⠠⢀⠉⠒⠤⣀") >= 3 and text.count("•") >= 2  # braille loss, eval dots
    speed = CurvesPlot("throughput")
    speed.show(curves)
    assert "samples/s 12.0" in speed.plot_text(78, 10)
    short = plot.plot_text(78, 5)  # a short plot keeps its points, not its title
    assert "loss 0.2500" not in short and "┤" in short
    assert "no loss points yet" in CurvesPlot("loss").plot_text(40, 8)


def test_a_growing_curve_is_redrawn_only_when_the_drawing_can_move() -> None:
    """A rebuild costs 20-30 ms: a curve that grows by a step a second waits until its new points
    fill a braille column (an unmounted plot counts 40 cells, 80 columns), or for an eval point."""
    plot = CurvesPlot("loss")
    plot.curves = Curves(loss=tuple((i, 1.0) for i in range(1000)))
    grown = Curves(loss=tuple((i, 1.0) for i in range(1005)))
    assert plot._grows(grown) and not plot._visible_change(grown)
    assert plot._visible_change(Curves(loss=tuple((i, 1.0) for i in range(1013))))
    assert plot._visible_change(Curves(loss=grown.loss, eval_loss=((1000, 0.9),)))
    assert not plot._grows(Curves(loss=tuple((i, 1.0) for i in range(5, 2000))))  # another run's curve


RANK_SCRIPT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; x = b'x' * (64 * 2**20); time.sleep(60)"])
print(child.pid, flush=True)
time.sleep(60)
"""


@pytest.fixture
def ranks() -> Any:
    """Two real rank processes (RANK=0, 1); rank 0 has a child, as ninja / cc1plus under a rank building a
    DeepSpeed op (it inherits RANK)."""
    procs = []
    for rank in (0, 1):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank))
        script = RANK_SCRIPT if rank == 0 else "import time; time.sleep(60)"
        procs.append(subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True))
    child = int(procs[0].stdout.readline())  # type: ignore[union-attr]
    yield procs, child
    for p in procs:
        p.kill()
        p.wait()
    with contextlib.suppress(ProcessLookupError):
        os.kill(child, 9)


def test_cpu_rank_children_are_processes_of_their_rank_not_cards(ranks: Any) -> None:
    procs, child = ranks
    pids = {p.pid for p in procs} | {child}
    source = CpuRankSource(pids=lambda: pids)
    deadline = time.monotonic() + 10
    snap = source.read()
    def grown() -> bool:  # the child has its memory: a compiler's, much more than the rank's here
        return any(p.pid == child and (p.memory_mb or 0) > 60 for p in snap.processes)

    while not grown() and time.monotonic() < deadline:
        time.sleep(0.1)
        snap = source.read()
    assert [(c.npu, c.pid) for c in snap.cards] == [(0, procs[0].pid), (1, procs[1].pid)]
    assert {(p.npu, p.pid) for p in snap.processes} == {(0, procs[0].pid), (0, child), (1, procs[1].pid)}
    kid = next(p for p in snap.processes if p.pid == child)
    assert kid.memory_mb is not None and kid.memory_mb > 60
    assert snap.cards[0].memory_used_mb is not None and snap.cards[0].memory_used_mb < kid.memory_mb  # not summed

    frame = frame_from_snapshot(snap, pids)
    assert [c.key for c in frame.cards] == ["rank0", "rank1"]
    assert [p.pid for p in frame.processes if p.child] == [child]
    status = status_text(frame, 80).plain
    assert status.startswith(" cpu: 2 rank(s), 3 process(es)")


def test_live_shows_one_row_per_rank_with_cpu_headers(ranks: Any) -> None:
    procs, child = ranks
    pids = {p.pid for p in procs} | {child}
    a = app(None)
    a.source = CpuRankSource(pids=lambda: pids)

    async def body(pilot: Any) -> None:
        await pilot.press("2")
        await until(pilot, lambda: len(getattr(a.screen, "rows", {})) > 0)
        assert list(a.screen.rows) == ["rank0", "rank1"]
        header = text_of(a.screen.query_one("#card-header"))
        assert "RANK" in header and "RSS" in header and "CPU%" in header
        assert "AICore" not in header and "HBM" not in header
        assert "cpu: 2 rank(s)" in text_of(a.screen.query_one("#live-status", Static))
        procs_text = text_of(a.screen.query_one("#procs"))
        assert f"{child}" in procs_text and "child of rank" in procs_text

    drive(a, body)


def test_eval_loss_comes_from_the_log_into_live_and_the_record(tmp_path: Path) -> None:
    from zerodeck.tui.services import eval_points

    log = tmp_path / "run.log"
    log.write_text(
        " 50%|█████     | 10/20 [00:05<00:05,  2.00it/s]\n"
        "{'loss': 2.1, 'learning_rate': 1e-4, 'epoch': 0.5}\n"
        "{'eval_loss': 1.9, 'eval_runtime': 0.3, 'epoch': 0.5}\n"
        '{"current_steps": 20, "total_steps": 20, "eval_loss": 1.5, "epoch": 1.0}\n', encoding="utf-8")
    assert eval_points(str(log)) == [(10, 1.9), (20, 1.5)]
    assert eval_points(str(tmp_path / "missing.log")) == [] and eval_points(None) == []
    run_id = add_running(log)
    a = app(None)

    async def body(pilot: Any) -> None:
        await pilot.press("2")
        await until(pilot, lambda: a.progress is not None and a.progress.curves.eval_loss == ((10, 1.9), (20, 1.5)))
        await pilot.pause(0.2)
        assert "eval 1.5000" in text_of(a.screen.query_one("#progress", Static))
        assert a.progress.run.id == run_id

    drive(a, body)


LAUNCHER = """
import os, subprocess, sys, time
rank = "import subprocess, time; subprocess.Popen(['sleep', '60']); print('rank up', flush=True); time.sleep(60)"
for r in (0, 1):
    subprocess.Popen([sys.executable, "-c", rank], env=dict(os.environ, RANK=str(r), LOCAL_RANK=str(r)))
time.sleep(60)
"""


def test_a_real_run_with_a_child_under_each_rank_shows_one_row_per_rank(tmp_path: Path) -> None:
    """A real run through its supervisor: a launcher starts two ranks (RANK=0, 1), each starts a child
    (`sleep`, standing in for ninja / cc1plus). The live view draws two rank rows, with the children
    listed under their ranks."""
    from zerodeck.core.launch import api
    from zerodeck.core.recipe.load import load_recipe_file

    from .tui_support import far_run_ids

    far_run_ids()
    recipe_path = tmp_path / "ranks.toml"
    recipe_path.write_text(
        'name = "ranks"\n[model]\nname = "zerodeck-tiny"\n[method]\nkind = "full"\n'
        '[hardware]\ndevice = "cpu"\ncards = 2\ncard_gb = 4.0\n'
        f'[launch]\nbackend = "command"\nargv = {json.dumps([sys.executable, "-c", LAUNCHER])}\n', encoding="utf-8")
    run_id = api.start_run(store(), load_recipe_file(recipe_path), recipe_path, detach=True)
    a = app(None, poll_interval=0.3, watch_interval=0.2)
    a.source = CpuRankSource(pids=a._run_pids_or_none)

    def children_seen() -> bool:
        frame = a.latest_frame
        return frame is not None and len([p for p in frame.processes if p.child]) == 2

    async def body(pilot: Any) -> None:
        await pilot.press("2")
        await until(pilot, lambda: a.followed_run == run_id and a.progress is not None, timeout=30)
        await until(pilot, lambda: bool(a.run_pids), timeout=30)
        await until(pilot, children_seen, timeout=30)
        await pilot.pause(0.3)
        frame = a.latest_frame
        assert [c.key for c in frame.cards] == ["rank0", "rank1"]
        assert list(a.screen.rows) == ["rank0", "rank1"]
        assert {p.card for p in frame.processes if p.child} == {"rank0", "rank1"}
        assert all(p.name == "sleep" for p in frame.processes if p.child)
        assert "cpu: 2 rank(s), 4 process(es)" in text_of(a.screen.query_one("#live-status", Static))

    try:
        drive(a, body)
    finally:
        api.stop_run(store(), run_id)
