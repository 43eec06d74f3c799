"""What a run's record carries before it starts: the exact recipe and the planner's prediction."""

from __future__ import annotations

import json

import pytest
from zerodeck.core.launch.api import create_run
from zerodeck.core.plan.verdict import plan_recipe
from zerodeck.core.recipe.grid import expand
from zerodeck.core.recipe.load import content_hash, load_recipe_file
from zerodeck.store.records import CardPeakRecord

from tests.launch_helpers import home_store

from .conftest import ROOT


def test_run_records_planner_prediction_and_snapshot() -> None:
    path = ROOT / "recipes" / "qwen2.5-32b-lora.toml"
    member = expand(load_recipe_file(path))[2]  # ZeRO-3
    store = home_store()
    run = store.run(create_run(store, member, path))
    assert run is not None and run.recipe_hash == content_hash(member)
    expected = plan_recipe(member).breakdown.total
    assert run.predicted_peak_gib == pytest.approx(expected, abs=1e-3)
    assert 5 < run.predicted_peak_gib < 64  # 32B ZeRO-3 on 8 x 64 GB fits


def test_show_lists_card_peaks(cli) -> None:
    recipe = load_recipe_file(ROOT / "recipes" / "demo-cpu-zero0.toml")
    store = home_store()
    run_id = create_run(store, recipe, None)
    store.replace_telemetry(run_id, [], [CardPeakRecord(source="cpu", card="rank0", peak_mb=812.0, baseline_mb=150.0,
                                                        total_mb=4096.0)])
    code, out, _ = cli("show", str(run_id), "--json")
    assert code == 0
    peaks = json.loads(out)["card_peaks"]
    assert peaks == [{"source": "cpu", "card": "rank0", "peak_mb": 812.0, "baseline_mb": 150.0, "total_mb": 4096.0}]
    code, out, _ = cli("show", str(run_id))
    assert "peak rank0" in out and "812 MB of 4096 (baseline 150)" in out


def test_run_records_the_recipe_axes_as_migration_2_derives_them() -> None:
    """create_run writes the axes of new runs; migration 2 derived them from the snapshots of old ones.
    Both must agree, or compare would group old and new runs of one recipe apart."""
    from zerodeck.store.migrations import snapshot_axes as recipe_axes

    store = home_store()
    for name in ("qwen2.5-32b-lora.toml", "demo-cpu-zero3.toml"):
        path = ROOT / "recipes" / name
        for member in expand(load_recipe_file(path)):
            run = store.run(create_run(store, member, path))
            assert run is not None
            axes = recipe_axes(store.snapshot_text(run.recipe_hash))
            got = {k: getattr(run, k) for k in ("model", "method", "lora_rank", "zero_stage", "offload",
                                                 "micro_batch", "seq_len", "data_samples")}
            assert got == {k: axes[k] for k in got}
            assert run.tags == tuple(member.tags)
