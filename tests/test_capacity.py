"""One capacity per card everywhere: the recipe, the plan, compare, charts (and the live view's rule).

A CPU demo's telemetry carries the host's RAM as each rank's total (23.5 GiB here); the recipe and
the plan say 4 GiB per rank. Compare and the memory chart must say 4 GiB too, and percentages
read as percentages.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from zerodeck.core.capacity import card_capacity_gib, percent_of
from zerodeck.core.compare import Selection, comparison_table, load_rows
from zerodeck.core.export.chart_data import memory_series
from zerodeck.core.export.tables import render
from zerodeck.core.plan.verdict import plan_recipe
from zerodeck.core.recipe.load import load_recipe_file
from zerodeck.core.values import human
from zerodeck.store.api import Store
from zerodeck.store.migrations import snapshot_axes
from zerodeck.store.records import CardPeakRecord, SampleRecord

ROOT = Path(__file__).resolve().parent.parent
HOST_RAM_MB = 24064.0  # what CpuRankSource reports as a rank's total on this 23.5 GiB machine


def test_the_rule() -> None:
    # A CPU rank: the recipe's card_gb, whatever total the telemetry saw beside it.
    assert card_capacity_gib(device="cpu", card_gb=4.0, source="cpu", total_mb=HOST_RAM_MB) == 4.0
    assert card_capacity_gib(device="cpu", card_gb=4.0, source="npu-smi", total_mb=HOST_RAM_MB) == 4.0
    # A device that reports its own total: the measured total wins over a rounded recipe figure.
    assert card_capacity_gib(device="npu", card_gb=64.0, source="npu-smi", total_mb=65536.0) == 64.0
    assert card_capacity_gib(device="cuda", card_gb=80.0, source="nvidia", total_mb=81559.0) == 79.647
    # A host source never speaks for a card; nothing known -> no capacity.
    assert card_capacity_gib(device="npu", card_gb=64.0, source="host", total_mb=1048576.0) == 64.0
    assert card_capacity_gib(device="npu", card_gb=None, source=None, total_mb=None) is None
    assert percent_of(0.42, 4.0) == 10.5 and percent_of(None, 4.0) is None and percent_of(1.0, None) is None


def test_percentages_read_as_percentages() -> None:
    assert human(1.8, "%") == "1.8%" and human(100.0, "%") == "100.0%" and human(None, "%") == "-"
    assert human(1.8) == "1.80"  # other units keep the general rule


@pytest.fixture
def cpu_run() -> tuple[Store, int]:
    store = Store.from_environment()
    path = ROOT / "recipes" / "demo-cpu-zero2.toml"
    toml = path.read_text()
    store.save_snapshot(hash="hcpu", name="demo-cpu-zero2", toml=toml, source_path=str(path))
    rid = store.add_run(name="demo-cpu-zero2", recipe_hash="hcpu", status="finished", outcome="succeeded",
                        backend="builtin", device="cpu", cards=2, card_gb=4.0, **snapshot_axes(toml))
    samples = [SampleRecord(t=float(t), source="cpu", card=str(c), memory_used_mb=300.0 + 50.0 * t,
                            memory_total_mb=HOST_RAM_MB) for t in range(3) for c in (0, 1)]
    samples += [SampleRecord(t=float(t), source="host", card="host", memory_used_mb=9000.0,
                             memory_total_mb=HOST_RAM_MB) for t in range(3)]
    peaks = [CardPeakRecord(source="cpu", card=str(c), peak_mb=430.08, baseline_mb=300.0, total_mb=HOST_RAM_MB)
             for c in (0, 1)]
    store.replace_telemetry(rid, samples, peaks)
    return store, rid


def test_cpu_demo_capacity_agrees_in_recipe_plan_compare_and_chart(cpu_run: tuple[Store, int], cli) -> None:
    store, rid = cpu_run
    recipe = load_recipe_file(ROOT / "recipes" / "demo-cpu-zero2.toml")
    assert recipe.hardware.card_gb == 4.0
    assert plan_recipe(recipe).capacity_gib == 4.0
    (row,) = load_rows(store, Selection(refs=(str(rid),)))
    assert row["capacity_gib"] == 4.0  # not the 23.5 GiB of host RAM the samples carry
    assert row["peak_pct"] == 10.5  # 0.42 GiB of 4 GiB
    _, cap = memory_series(store.memory_series(rid), device="cpu", card_gb=4.0)
    assert cap == 4.0
    text = render(comparison_table([row]), "table")
    assert "10.5%" in text and "23.5" not in text
    code, svg, _ = cli("chart", "memory", str(rid))
    assert code == 0 and "capacity 4 GiB" in svg and "23.5" not in svg
    code, svg, _ = cli("chart", "peaks", str(rid))
    # The peak chart's capacity mark stands at compare's capacity_gib, 4 GiB: the GiB axis ends near 4,
    # where the host's 23.5 GiB would stretch it past 20.
    import xml.etree.ElementTree as ET

    ticks = [float(t.strip()) for t in ET.fromstring(svg).itertext() if t.strip().replace(".", "", 1).isdigit()]
    assert code == 0 and 4.0 <= max(ticks) <= 5.0


def test_live_view_bars_a_cpu_rank_against_the_runs_card_gb() -> None:
    """The live view follows the same capacity rule: a CPU rank's bar is against the recipe's card_gb, an
    NPU's against the total npu-smi reads."""
    from zerodeck.core.telemetry.model import Card, Snapshot
    from zerodeck.tui.telemetry import frame_from_snapshot

    cpu = Snapshot(source="cpu", cards=[Card(npu=0, chip=0, name="rank0", memory_used_mb=512.0,
                                             memory_total_mb=24_000.0)])
    assert frame_from_snapshot(cpu, card_gb=4.0).cards[0].total_mb == 4096.0
    assert frame_from_snapshot(cpu).cards[0].total_mb == 24_000.0  # no run followed: nothing better known
    npu = Snapshot(source="npu-smi", cards=[Card(npu=0, chip=0, hbm_used_mb=3000.0, hbm_total_mb=65536.0)])
    assert frame_from_snapshot(npu, card_gb=64.0).cards[0].total_mb == 65536.0
