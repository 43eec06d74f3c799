"""Metric points and summaries parsed from real run output (tests/fixtures/logs/PROVENANCE.md)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from zerodeck.core.outcome import (
    MetricsFollower,
    parse_metrics,
    parse_results_json,
    parse_trainer_log_jsonl,
)
from zerodeck.core.outcome.metrics import POINT_KEYS, SUMMARY_KEYS

from .conftest import FIXTURES

LOGS = FIXTURES / "logs"


def _lines(name: str) -> list[str]:
    return (LOGS / name).read_text(encoding="utf-8").splitlines(keepends=True)


def test_llamafactory_trainer_log_jsonl() -> None:
    m = parse_trainer_log_jsonl(LOGS / "run_lf095_cpu_trainer_log.jsonl")
    assert [p["step"] for p in m.points] == list(range(2, 21, 2))
    assert m.points[0]["loss"] == 6.411787033081055
    assert m.points[0]["lr"] == 0.0005
    assert m.points[-1]["loss"] == 6.353116989135742
    assert m.points[-1]["epoch"] == 2.0 and m.points[-1]["t"] == 3.0
    assert set(m.points[0]) == set(POINT_KEYS)
    s = m.summary
    assert (s["steps_done"], s["steps_total"], s["final_loss"]) == (20, 20, 6.353116989135742)
    assert set(SUMMARY_KEYS) <= set(s)


def test_llamafactory_trainer_log_old_keys_with_nulls() -> None:
    m = parse_trainer_log_jsonl(LOGS / "issue_lf774_trainer_log_2023_format.jsonl")
    # The last line (loss and learning_rate null) moves progress but is no point.
    assert [p["step"] for p in m.points] == [3200, 3210, 3220, 3230]
    assert m.points[0]["lr"] == 1.4439610072863874e-08
    assert m.points[-1]["loss"] == 4.4598
    assert (m.summary["steps_done"], m.summary["steps_total"], m.summary["eta_s"]) == (3235, 3235, 0.0)
    m2 = parse_trainer_log_jsonl(LOGS / "issue_lf4350_trainer_log_2024_format.jsonl")
    assert [p["loss"] for p in m2.points] == [0.6608, 0.8096, 0.5613, 0.6865]
    assert m2.summary["eta_s"] == 23 * 60 + 24  # remaining_time of the last line
    assert m2.summary["steps_total"] == 82


def test_llamafactory_console_transformers5_strings() -> None:
    m = parse_metrics(_lines("run_lf095_cpu_console.log"))
    assert [p["step"] for p in m.points] == list(range(2, 21, 2))
    first, last = m.points[0], m.points[-1]
    assert (first["loss"], first["grad_norm"], first["lr"], first["epoch"]) == (6.412, 424.9, 0.0005, 0.2)
    assert (last["loss"], last["lr"]) == (6.353, 7.596e-06)
    s = m.summary
    assert (s["steps_done"], s["steps_total"], s["final_loss"]) == (20, 20, 6.353)
    # `'3.151'` from the final dict beats the block's `0:00:03.15`; the block's 50.773 beats `'50.77'`.
    assert (s["train_runtime_s"], s["samples_per_s"], s["train_loss"]) == (3.151, 50.773, 6.381)
    assert s["step_time_s"] == pytest.approx(1 / 6.347)


def test_hf_console_transformers4_floats() -> None:
    m = parse_metrics(_lines("run_hf_tf4571_ds0184_zero3_cpu_console.log"))
    assert [p["step"] for p in m.points] == list(range(2, 17, 2))
    assert m.points[0] == {"step": 2, "t": 1.0, "loss": 4.7119, "lr": 0.0005, "epoch": 0.25,
                           "grad_norm": 0.854500277814431, "samples_per_s": None, "tokens_per_s": None,
                           "mem_gib": None}
    assert m.points[-1]["loss"] == 4.5907
    s = m.summary
    assert (s["train_runtime_s"], s["samples_per_s"], s["train_loss"]) == (7.3993, 17.299, 4.653329789638519)
    assert s["final_loss"] == 4.5907 and s["steps_done"] == 16


def test_both_ranks_printing_merge_into_one_point_per_step() -> None:
    m = parse_metrics(_lines("run_hf_tf5240_ds0198_zero3_cpu_console.log"))
    assert [p["step"] for p in m.points] == list(range(2, 33, 2))
    assert (m.points[0]["loss"], m.points[-1]["loss"]) == (4.865, 4.709)
    assert m.summary["train_runtime_s"] == 17.65 and m.summary["train_loss"] == 4.7916


def test_deepspeed_step_and_timer_lines() -> None:
    m = parse_metrics(_lines("run_ds0198_launcher_zero3_cpu_loglevel_info.log"))
    assert [p["step"] for p in m.points] == [1, 2, 3, 4, 5]
    assert all(p["lr"] == 0.001 for p in m.points)
    step3 = m.points[2]
    assert (step3["samples_per_s"], step3["mem_gib"]) == (331.8987815928929, 0.38)
    assert step3["t"] == pytest.approx(29.267)  # seconds since the first DeepSpeed timestamp
    assert m.summary["samples_per_s"] == 321.98448025486675  # the last RunningAvgSamplesPerSec
    assert m.summary["steps_done"] == 5


def test_results_json() -> None:
    r = parse_results_json(LOGS / "run_lf095_cpu_train_results.json")
    assert (r["train_runtime_s"], r["samples_per_s"], r["train_loss"]) == (3.1513, 50.773, 6.38102240562439)
    assert r["step_time_s"] == pytest.approx(1 / 6.347)
    assert parse_results_json(LOGS / "run_lf095_cpu_all_results.json") == r
    assert parse_results_json(LOGS / "run_hf_tf4571_train_results.json")["train_runtime_s"] == 7.3993


def test_results_json_garbage(tmp_path: Path) -> None:
    bad = tmp_path / "train_results.json"
    bad.write_text('{"train_runtime": 3.1')
    assert all(v is None for v in parse_results_json(bad).values())


ZD_STEP = ('{"zerodeck": "step", "step": %d, "total_steps": 20, "loss": %s, "lr": 0.001, "samples_per_s": 41.2, '
           '"tokens_per_s": 2636.8, "peak_mem_mb": 212.5, "rank": 0, "t": %s}')
ZD_DONE = ('{"zerodeck": "done", "steps": 20, "train_runtime": 7.1, "train_loss": 4.2, "samples_per_s": 40.1, '
           '"tokens_per_s": 2566.0}')


def test_zerodeck_builtin_trainer_lines() -> None:
    lines = ["[rank0]: " + ZD_STEP % (1, 6.0, 0.5), ZD_STEP % (2, 5.5, 0.9),
             ZD_STEP.replace('"rank": 0', '"rank": 1') % (2, 9.9, 0.9),  # another rank's line is ignored
             "2026-11-28 03:05:49 " + ZD_STEP % (3, 5.91, 1.73)]
    f = MetricsFollower()
    for line in lines:
        f.feed(line)
    assert [p["loss"] for p in f.points] == [6.0, 5.5, 5.91]
    assert f.points[0]["mem_gib"] == pytest.approx(212.5 / 1024)
    live = f.summary()
    assert (live["steps_done"], live["steps_total"], live["percent"]) == (3, 20, 15.0)
    assert live["step_time_s"] == pytest.approx((1.73 - 0.5) / 2)
    assert live["eta_s"] == pytest.approx(17 * (1.73 - 0.5) / 2)
    f.feed(ZD_DONE[:40])  # half-written
    assert f.summary()["train_runtime_s"] is None
    f.feed(ZD_DONE)
    s = f.summary()
    assert (s["train_runtime_s"], s["samples_per_s"], s["tokens_per_s"], s["steps_done"]) == (7.1, 40.1, 2566.0, 20)
    assert (s["final_loss"], s["train_loss"], s["eta_s"]) == (5.91, 4.2, 0.0)


def test_follower_live_progress_on_a_real_run() -> None:
    f = MetricsFollower()
    seen: list[int] = []
    for line in _lines("run_lf095_sigint_process_group.log"):
        for point in f.feed(line):
            seen.append(point["step"])
        if seen == [2]:
            early = f.summary()
    assert early["steps_total"] == 5000 and early["last_loss"] == 6.407 and early["eta_s"] is not None
    assert seen == list(range(2, 27, 2))
    assert f.summary()["steps_done"] == 27  # the tqdm bar got further than the last logged loss


def test_feed_text_chunks_equal_whole_lines() -> None:
    text = (LOGS / "run_hf_tf4571_ds0184_zero3_cpu_console.log").read_text(encoding="utf-8")
    f = MetricsFollower()
    for i in range(0, len(text), 777):  # cut anywhere, mid-line included
        f.feed_text(text[i:i + 777])
    f.flush()
    whole = parse_metrics(text.splitlines())
    assert f.points == whole.points and f.summary() == whole.summary


def test_nan_loss_stays_visible() -> None:
    m = parse_metrics(_lines("issue_lf5627_npu910b_grad_norm_nan.txt"))
    assert len(m.points) == 4 and all(math.isnan(p["grad_norm"]) for p in m.points)
    assert m.points[0]["loss"] == 1.4596


def test_reporter_line_numbers_and_tqdm_steps() -> None:
    m = parse_metrics(_lines("issue_lf8261_console_tf4_loss_lines_then_nccl_timeout.txt"))
    assert [p["loss"] for p in m.points] == [3.5534, 0.0]
    assert m.points[-1]["step"] == 20 and m.points[-1]["t"] == 57.0
    assert (m.summary["steps_done"], m.summary["steps_total"]) == (24, 1752)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(
    st.text(max_size=60),
    st.sampled_from(["{'loss': ", "{\"zerodeck\": \"step\", \"step\": ", "***** train metrics *****",
                     "  train_runtime = 0:0x", " 10%|█ | 2/20 [00:01<00:03,  5.0it/s]", "step=3, skipped=0, lr=[",
                     "{\"current_steps\": 1e400, \"total_steps\": -1}", "{'loss': 'nan', 'epoch': 'inf'}",
                     "{\"zerodeck\": \"step\", \"step\": 1e999}", "Total optimization steps = 0"]),
), max_size=25))
def test_garbage_never_raises(lines: list[str]) -> None:
    f = MetricsFollower()
    for line in lines:
        f.feed(line)
    f.feed_text("\n".join(lines))
    f.flush()
    json.dumps({k: v for k, v in f.summary().items() if not (isinstance(v, float) and math.isnan(v))})
    parse_metrics(lines)


def test_live_throughput_from_tqdm_and_batch_size() -> None:
    f = MetricsFollower()
    for line in _lines("run_lf095_cpu_console.log"):
        f.feed(line)
        if "{'loss': '6.39'," in line:
            break
    live = f.summary()
    # Total train batch size = 8; the bar before the 8th step's dict says 7.37 it/s... at that moment.
    assert live["samples_per_s"] is not None and live["samples_per_s"] > 0
    assert live["train_runtime_s"] is None and live["steps_total"] == 20


@settings(max_examples=40, deadline=None)
@given(cut=st.integers(0, 10**6), junk=st.text(max_size=80), where=st.integers(0, 10**6))
def test_mutated_real_log_never_raises(cut: int, junk: str, where: int) -> None:
    text = (LOGS / "run_hf_tf4571_ds0184_zero3_cpu_console.log").read_text(encoding="utf-8")
    text = text[: cut % (len(text) + 1)]
    at = where % (len(text) + 1)
    parse_metrics((text[:at] + junk + text[at:]).splitlines())


def test_trainer_state_json() -> None:
    from zerodeck.core.outcome import parse_trainer_state_json

    m = parse_trainer_state_json(LOGS / "run_lf095_cpu_trainer_state.json")
    assert [p["step"] for p in m.points] == list(range(2, 21, 2))
    assert (m.points[0]["grad_norm"], m.points[0]["loss"]) == (424.86950488168037, 6.411787033081055)
    assert m.points[-1]["loss"] == 6.353116989135742
    s = m.summary
    assert (s["steps_done"], s["steps_total"], s["train_runtime_s"], s["samples_per_s"]) == (20, 20, 3.1513, 50.773)
    assert s["train_loss"] == 6.38102240562439


def test_trainer_state_json_garbage(tmp_path: Path) -> None:
    from zerodeck.core.outcome import parse_trainer_state_json

    for text in ("", "[1, 2]", '{"log_history": [1, {"loss": "x", "step": null}, {"train_runtime": []}]}'):
        (tmp_path / "s.json").write_text(text)
        assert parse_trainer_state_json(tmp_path / "s.json").points == []
