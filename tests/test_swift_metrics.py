"""ms-swift's log lines as metric points and progress: its console dicts (transformers-5 strings and
3.x floats) and its `logging.jsonl`, from a real CPU run and from ms-swift issues (PROVENANCE.md)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
from zerodeck.core.launch.outcome_bridge import llamafactory_results
from zerodeck.core.outcome import MetricsFollower, parse_metrics, parse_trainer_log_jsonl
from zerodeck.core.outcome.metrics import _swift_time

from .conftest import FIXTURES

SWIFT = FIXTURES / "swift"


def test_real_console_gives_every_step_and_the_final_summary() -> None:
    m = parse_metrics((SWIFT / "run_swift460_cpu_lora_console.log").open())
    assert [p["step"] for p in m.points] == [1, 2, 3, 4, 5, 6]
    first = m.points[0]
    assert (first["loss"], first["lr"], first["grad_norm"], first["epoch"]) == (5.987, 0.000933, 0.4884, 0.3333)
    s = m.summary
    assert (s["steps_done"], s["steps_total"], s["percent"]) == (6, 6, 100.0)
    assert s["train_runtime_s"] == pytest.approx(0.7521) and s["samples_per_s"] == pytest.approx(63.82)
    assert s["train_loss"] == pytest.approx(5.932) and s["final_loss"] == pytest.approx(5.949)
    assert s["eta_s"] == 0.0


def test_logging_jsonl_is_exact_and_read_from_the_output_dir(tmp_path: Path) -> None:
    m = parse_trainer_log_jsonl(SWIFT / "run_swift460_cpu_logging.jsonl")
    assert [p["step"] for p in m.points] == [1, 2, 3, 4, 5, 6]
    assert m.points[0]["loss"] == pytest.approx(5.98693895)  # the console printed 5.987
    assert m.summary["train_runtime_s"] == pytest.approx(0.7521)
    # The supervisor's output-directory reader takes ms-swift's file when LLaMA-Factory's is absent.
    shutil.copy(SWIFT / "run_swift460_cpu_logging.jsonl", tmp_path / "logging.jsonl")
    summary, points = llamafactory_results(tmp_path)
    assert len(points) == 6 and summary["steps_total"] == 6 and summary["final_loss"] == pytest.approx(5.94900322)


def test_swift3_jsonl_with_eval_lines_memory_and_long_times() -> None:
    follower = MetricsFollower()
    for line in (SWIFT / "issue_swift4408_logging_jsonl.jsonl").read_text().splitlines():
        follower.feed(line)
    points = follower.points
    assert [p["step"] for p in points] == [1200, 1400]  # eval lines are not training points
    assert points[0]["mem_gib"] == 64.64 and points[0]["t"] == 4 * 3600 + 16 * 60 + 28
    assert follower.eval_points == [(1000, 0.30067122), (1200, 0.28628108)]
    s = follower.summary()
    assert (s["steps_done"], s["steps_total"]) == (1400, 3936)
    assert s["eta_s"] == 8 * 3600 + 59 * 60 + 13  # ms-swift's own remaining_time


def test_swift3_console_dicts_on_one_line() -> None:
    m = parse_metrics((SWIFT / "issue_swift4146_console_dicts.txt").open())
    assert [(p["step"], p["loss"]) for p in m.points] == [(12, 0.4850769), (13, 0.42675275)]
    assert m.points[1]["mem_gib"] == 69.19 and m.summary["steps_total"] == 94


@pytest.mark.parametrize(("text", "seconds"), [
    ("0s", 0.0), ("59s", 59.0), ("1m 0s", 60.0), ("3h 38m 49s", 13129.0), ("1d 2h 0m 5s", 93605.0),
    ("'10h 42m 29s'", 38549.0), ("", None), ("soon", None), ("5", None), ("1:02", None),
])
def test_swift_time(text: str, seconds: float | None) -> None:
    assert _swift_time(text) == seconds


def test_garbage_progress_is_ignored() -> None:
    follower = MetricsFollower()
    for line in ["{'loss': 1.0, 'global_step/max_steps': 'x/y'}", '{"global_step/max_steps": "3/0", "loss": "nan"}',
                 "{'global_step/max_steps': '2/10', 'elapsed_time': 'later'}"]:
        follower.feed(line)
    s = follower.summary()
    assert s["steps_done"] == 3 and s["steps_total"] == 10
    assert math.isnan(follower.points[0]["loss"])
