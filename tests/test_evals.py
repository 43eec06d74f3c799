"""Eval loss read back from a run's console (`core/outcome/evals.py`), which `chart loss` and the TUI's
run detail draw: checked on the console of a real LLaMA-Factory run that evaluated every two steps."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from zerodeck.core.export.chart_data import Curve
from zerodeck.core.outcome import evals
from zerodeck.core.outcome.evals import eval_points
from zerodeck.store.api import Store

from .conftest import FIXTURES

# llamafactory 0.9.5, ZeRO-3 LoRA, 2 CPU ranks, `eval_steps: 2`: its trainer_state.json logged
# eval_loss 5.958208 at step 2, 5.936495 at 4 and 5.930571 at 6; the console rounds them.
CONSOLE = FIXTURES / "logs" / "run_lf095_ds0198_zero3_cpu_eval_steps.log"
EVALS = [(2, 5.958), (4, 5.936), (6, 5.931)]


def test_each_eval_takes_the_training_bars_step_not_its_own_bars() -> None:
    # Each eval dict comes right after the eval set's own bar (`0/2`): read as the step, every eval
    # landed on step 0 and the chart showed one point.
    text = CONSOLE.read_text(encoding="utf-8")
    assert "| 0/2 [" in text and "Total optimization steps = 6" in text
    assert eval_points(str(CONSOLE)) == EVALS


def test_a_console_longer_than_the_scan_still_knows_the_training_total(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the log's tail is scanned; the total, printed once at the start, is looked for in its head."""
    data = CONSOLE.read_bytes()
    scan = len(data) - data.index(b"{'eval_loss'") - 10  # the tail starts inside the first eval's line
    assert data.index(b"Total optimization steps") < len(data) - scan
    monkeypatch.setattr(evals, "EVAL_SCAN_BYTES", scan)
    assert eval_points(str(CONSOLE)) == EVALS[1:]
    # Past the head's bound the total is not found: the bars are then read as before, the eval's own last.
    monkeypatch.setattr(evals, "HEAD_SCAN_BYTES", 1_000)
    assert [s for s, _ in eval_points(str(CONSOLE))] == [0]


def test_a_log_without_the_total_reads_every_bar(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_text(" 10%|#         | 10/100 [00:05<00:45,  2.00it/s]\n{'eval_loss': 1.9, 'epoch': 0.1}\n"
                   " 20%|##        | 20/100 [00:10<00:40,  2.00it/s]\r"
                   " 30%|###       | 30/100 [00:15<00:35,  2.00it/s]\n{'eval_loss': 1.5, 'epoch': 0.3}\n")
    assert eval_points(str(log)) == [(10, 1.9), (30, 1.5)]


def test_chart_loss_draws_the_runs_evaluations_at_their_steps(cli, backend_url: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from zerodeck.core.export.painter import Painter

    store = Store.from_environment()
    store.save_snapshot(hash="h", name="tiny", toml="", source_path=None)
    log = tmp_path / "run.log"
    shutil.copy(CONSOLE, log)
    rid = store.add_run(name="tiny", recipe_hash="h", status="finished", outcome="succeeded", log_path=str(log))
    store.upsert_metrics(rid, [{"step": s, "loss": 6.0 - s / 100} for s in range(1, 7)])
    seen: list[Curve] = []
    real = Painter.draw

    def keep(self: Painter, chart: str, data: Any, *args: Any, **kw: Any) -> bytes:
        seen.extend(data)
        return real(self, chart, data, *args, **kw)

    monkeypatch.setattr(Painter, "draw", keep)
    code, svg, err = cli("chart", "loss", str(rid))
    assert code == 0, err
    (curve,) = seen
    assert curve.eval == [(float(s), v) for s, v in EVALS] and len(curve.train) == 6
    assert "eval" in svg
