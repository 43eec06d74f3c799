"""The memory model against published measurements, as a regression test (issue 16).

`bench/bench_plan_accuracy.py` prints the figures; this test holds them at what the model reached,
plus a small margin, so a change that makes the predictions worse fails here.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Reached by the model on 123 measured rows (bench/bench_plan_accuracy.py): median 3.7 %, p90 9.7 %,
# worst 14.9 % (row 5), fits/OOM 139 of 143 (97.2 %); each limit a small margin above (the issue asks
# for median < 5, worst < 15, agreement >= 97 %).
MEDIAN_MAX, P90_MAX, WORST_MAX, AGREE_MIN = 4.0, 10.2, 15.0, 0.97
# Every row left out, by the reason the bench prints: no more may be dropped to pass the figures.
EXCLUDED = {
    "published estimate": list(range(163, 179)),  # LLaMA-Factory's table: no batch, length or ZeRO
    "naive model parallelism": [107, 108, 109, 110, 111, 121, 122, 123, 124, 125, 126],  # device_map
    "launch not stated": [18, 19, 20, 21, 22, 23],  # 23.6 bytes/param: no optimizer layout gives it
    "same source and settings report more memory": [114],  # more at 2048 than at 4096 tokens
    "source flags it as inconsistent": [143],
    "ms-swift DDP": [140],  # the logged figure sums every visible device; 7.6 GiB above row 139
}


@pytest.fixture(scope="module")
def bench() -> Any:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import bench_plan_accuracy
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return bench_plan_accuracy


def test_accuracy_against_published_measurements(bench: Any) -> None:
    res = bench.evaluate()
    assert res["measured"] >= 123  # the exclusions did not grow
    assert res["median_abs_pct"] < MEDIAN_MAX
    assert res["worst_abs_pct"] < WORST_MAX
    assert res["p90_abs_pct"] < P90_MAX
    assert res["agree"] / res["outcomes"] >= AGREE_MIN


def test_model_range_covers_the_measured_spread(bench: Any) -> None:
    # The model-basis range of `plan --json` is the residual spread on the same rows.
    from zerodeck.core.plan.ranges import MODEL_SPREAD

    lo, hi = bench.evaluate()["ratio_spread"]
    assert MODEL_SPREAD[0] == pytest.approx(lo, abs=0.02)
    assert MODEL_SPREAD[1] == pytest.approx(hi, abs=0.02)


def test_excluded_rows_are_the_stated_ones(bench: Any) -> None:
    excluded = bench.evaluate()["excluded"]
    got = {next(k for k in EXCLUDED if why.startswith(k)): rows for why, rows in excluded.items()}
    assert got == EXCLUDED
