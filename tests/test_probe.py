"""`zerodeck probe` and the fit frontier (issue 16): real probe runs on the CPU demo, the search
logic, and the plan's range and basis read from a real store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from zerodeck.core.plan import ranges
from zerodeck.core.plan.calibration import probe_measurements
from zerodeck.core.plan.memory import PlanInput, estimate
from zerodeck.core.plan.registry import lookup
from zerodeck.core.plan.verdict import plan_recipe, recipe_probe_key
from zerodeck.core.probe.frontier import FrontierProbe, planned_frontier, probed_frontier
from zerodeck.core.probe.run import PROBE_TAG, probe, probe_recipe
from zerodeck.core.recipe import load_recipe_file
from zerodeck.store.api import Store
from zerodeck.store.records import CardPeakRecord

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "recipes" / "demo-cpu-zero2.toml"


def _demo_copy(tmp_path: Path, **replace: str) -> Path:
    """The CPU demo with some lines replaced, beside its data (the recipe's relative data path)."""
    shutil.copytree(ROOT / "recipes" / "data", tmp_path / "data", dirs_exist_ok=True)
    text = DEMO.read_text(encoding="utf-8")
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    out = tmp_path / "recipe.toml"
    out.write_text(text, encoding="utf-8")
    return out


# -- the probe recipe and the search, no run ----------------------------------------------------

def test_probe_recipe_overrides_steps_tags_and_holds_cpu_ranks_to_their_card() -> None:
    recipe = load_recipe_file(DEMO)
    probed = probe_recipe(recipe, 3, micro_batch=8)
    assert probed.train.max_steps == 3 and probed.train.micro_batch == 8
    assert PROBE_TAG in probed.tags and set(recipe.tags) <= set(probed.tags)
    assert probed.launch.options["card_limit"] is True
    assert recipe.train.max_steps == 20 and "card_limit" not in recipe.launch.options  # untouched


def test_builtin_job_holds_ranks_to_card_gb_only_when_asked(tmp_path: Path) -> None:
    from zerodeck.core.launch.builtin_render import job_spec
    from zerodeck.core.launch.context import RenderContext

    recipe = load_recipe_file(DEMO)
    ctx = RenderContext(run_id=1, run_dir=tmp_path, recipe_dir=DEMO.parent, master_port=29500,
                        python="python", visible_devices=[0, 1])
    assert job_spec(recipe, ctx)["card_limit_mb"] is None
    assert job_spec(probe_recipe(recipe, 2), ctx)["card_limit_mb"] == pytest.approx(4.0 * 1024)


def _scripted(fits_up_to: int, seen: list[int]):
    def run_probe(value: int) -> FrontierProbe:
        seen.append(value)
        return FrontierProbe(value, len(seen), "succeeded" if value <= fits_up_to else "oom",
                             value <= fits_up_to, None)
    return run_probe


@pytest.mark.parametrize(("planned", "truth", "expect_values"), [
    (8, 12, [8, 16, 12]),    # the planner was low: double, then bisect
    (8, 5, [8, 4, 6]),       # the planner was high: halve, then bisect
    (8, 8, [8, 16, 12]),     # exact: the third probe narrows to 8..12
    (1, 0, [1]),             # not even 1 fits: one probe says so
])
def test_frontier_bisection_is_seeded_by_the_plan_and_takes_at_most_three_probes(
        planned: int, truth: int, expect_values: list[int]) -> None:
    seen: list[int] = []
    f = probed_frontier("micro_batch", planned, _scripted(truth, seen))
    assert seen == expect_values and len(f.probes) <= 3
    fits = [p.value for p in f.probes if p.fits]
    fails = [p.value for p in f.probes if not p.fits]
    assert f.value == (max(fits) if fits else None)
    assert f.first_oom == (min(fails) if fails else None)
    if f.value is not None and f.first_oom is not None:
        assert f.value < f.first_oom and f.value <= truth < f.first_oom


@pytest.mark.parametrize("axis", ["micro_batch", "seq_len"])
def test_planned_frontier_is_the_last_value_whose_high_end_fits(axis: str) -> None:
    inp = PlanInput(arch=lookup("Qwen2.5-7B"), stage=3, cards=8, card_gb=64, device="npu")
    v = planned_frontier(inp, axis)  # type: ignore[arg-type]
    assert v is not None and v > 1

    def high(x: int) -> float:
        return estimate(inp.with_(**{axis: x})).hard * ranges.MODEL_SPREAD[1]

    assert high(v) <= 64 < high(v + 1)


# -- ranges and basis from a real store ---------------------------------------------------------

def _recorded(store: Store, recipe, *, measured: float | None, outcome: str, tags: list[str],
              predicted: float = 0.5) -> int:
    store.save_snapshot(hash="h", name=recipe.name, toml="", source_path=None)
    rid = store.add_run(name=recipe.name, recipe_hash="h", tags=tags, backend=recipe.launch.backend,
                        device=recipe.hardware.device, cards=recipe.hardware.cards, card_gb=recipe.hardware.card_gb,
                        predicted_peak_gib=predicted, micro_batch=recipe.train.micro_batch,
                        seq_len=recipe.train.seq_len, zero_stage=recipe.zero.stage, offload=recipe.zero.offload)
    store.update_run(rid, measured_peak_gib=measured)
    store.finish_run(rid, outcome)
    return rid


def test_range_is_model_then_calibrated_then_probed(tmp_path: Path) -> None:
    from zerodeck.core.plan.calibration import calibration_table

    recipe = load_recipe_file(DEMO)
    store = Store.open(f"sqlite:///{tmp_path / 'z.db'}")
    model = plan_recipe(recipe)
    assert model.basis == "model"
    lo, hi = model.range_gib
    assert lo == pytest.approx(model.total_gib * ranges.MODEL_SPREAD[0])
    assert hi == pytest.approx(model.total_gib * ranges.MODEL_SPREAD[1])

    for measured in (0.50, 0.52, 0.51):  # three ordinary runs: a calibrated, narrower band
        _recorded(store, recipe, measured=measured, outcome="succeeded", tags=[])
    cal = plan_recipe(recipe, calibration=calibration_table(store), probes=probe_measurements(store))
    assert cal.basis == "calibrated" and cal.calibration_runs == 3
    cal_total = cal.calibrated_total_gib or 0.0
    assert (cal.range_gib[1] - cal.range_gib[0]) / cal_total < (hi - lo) / model.total_gib  # narrower
    assert cal.range_gib[0] <= (cal.calibrated_total_gib or 0) <= cal.range_gib[1]

    rid = _recorded(store, recipe, measured=0.8, outcome="succeeded", tags=["demo", PROBE_TAG])
    probes = probe_measurements(store)
    assert probes[recipe_probe_key(recipe)].run_id == rid
    probed = plan_recipe(recipe, calibration=calibration_table(store), probes=probes)
    assert probed.basis == "probed" and probed.probe_run_id == rid
    assert probed.range_gib == pytest.approx((0.8, 0.8 * (1 + ranges.PROBE_MARGIN)))

    oom = _recorded(store, recipe, measured=None, outcome="oom", tags=[PROBE_TAG])
    after_oom = plan_recipe(recipe, probes=probe_measurements(store))
    assert (after_oom.verdict, after_oom.probe_run_id) == ("oom", oom)


def test_the_verdict_reads_the_high_end_of_the_range() -> None:
    # 52 GiB must fit on a 64 GiB card: under 90 % at the centre, over it at the high end.
    assert ranges.verdict_with_range(52, 52 * ranges.MODEL_SPREAD[1], 64) == "tight"
    assert ranges.verdict_with_range(40, 40 * ranges.MODEL_SPREAD[1], 64) == "fits"
    assert ranges.verdict_with_range(65, 70, 64) == "oom"


def test_plan_json_keeps_its_keys_and_adds_range_and_basis(cli) -> None:
    code, out, _ = cli("plan", str(DEMO), "--json")
    d = json.loads(out)
    assert code == 0 and {"per_card_gib", "capacity_gib", "verdict", "host_gib"} <= set(d)
    assert d["basis"] == "model" and d["range_gib"][0] <= d["per_card_gib"]["total"] <= d["range_gib"][1]


def test_bad_input_is_one_line_and_exit_2(cli) -> None:
    code, _, err = cli("probe", str(DEMO), "--steps", "0")
    assert code == 2 and "--steps" in err
    code, _, err = cli("plan", str(DEMO), "--probe")
    assert code == 2 and err.count("\n") == 1 and "--frontier" in err
    code, _, err = cli("plan", "--model", "Qwen2.5-7B", "--frontier", "micro_batch", "--probe")
    assert code == 2 and "RECIPE" in err


# -- real probe runs (slow) ---------------------------------------------------------------------

@pytest.mark.slow
def test_probe_on_the_cpu_demo_records_a_probe_run_with_its_telemetry_peaks(tmp_path: Path) -> None:
    recipe_path = _demo_copy(tmp_path)
    store = Store.open(f"sqlite:///{tmp_path / 'z.db'}")
    res = probe(store, load_recipe_file(recipe_path), recipe_path, steps=3, timeout_s=600)
    run = store.run(res.run_id)
    assert run is not None and run.outcome == "succeeded" and PROBE_TAG in run.tags
    assert run.steps_done == 3  # max_steps overridden (the recipe says 20)
    peaks: list[CardPeakRecord] = [p for p in store.card_peaks(run.id) if p.source == "cpu"]
    samples = [r for r in store.memory_series(run.id) if r[1] == "cpu"]
    log = Path(run.log_path).read_text(errors="replace")[-2000:] if run.log_path else ""
    said = (f"peaks {peaks}, probe cards {res.cards}, {len(samples)} cpu samples of cards "
            f"{sorted({r[2] for r in samples})}; log tail:\n{log}")
    assert [p.card for p in peaks] == ["rank0", "rank1"] == res.cards, said
    assert res.per_card_peak_gib == [round((p.peak_mb or 0) / 1024, 3) for p in peaks]
    assert run.measured_peak_gib == pytest.approx(max(res.per_card_peak_gib), abs=1e-3)
    series = [r for r in store.memory_series(run.id) if r[1] == "cpu"]
    for p in peaks:  # the recorded samples never exceed the recorded peak of their rank
        used = [r[3] for r in series if r[2] == p.card and r[3] is not None]
        assert used and max(used) <= (p.peak_mb or 0) + 1e-6
    # rank 0 reports its own max RSS each step: the telemetry peak is that process's memory
    own = max(m.mem_gib or 0 for m in store.metrics(run.id))
    assert 0.7 * own <= res.per_card_peak_gib[0] <= 1.05 * own
    assert res.step_s is not None and res.step_s > 0 and res.verdict == "fits"
    assert probe_measurements(store)[recipe_probe_key(load_recipe_file(recipe_path))].run_id == run.id


@pytest.mark.slow
def test_frontier_probes_find_a_micro_batch_that_fits_and_one_above_that_does_not(cli, tmp_path: Path) -> None:
    # 1 GiB CPU cards at 256 tokens: the ranks' own ~0.5 GiB plus the batch's logits and attention.
    recipe_path = _demo_copy(tmp_path, **{"card_gb = 4.0": "card_gb = 1.0", "seq_len = 64": "seq_len = 256"})
    code, out, err = cli("plan", str(recipe_path), "--frontier", "micro_batch", "--probe", "--probe-steps", "2",
                         "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["basis"] == "probed" and 1 <= len(d["probes"]) <= 3
    fits = [p for p in d["probes"] if p["fits"]]
    ooms = [p for p in d["probes"] if not p["fits"]]
    assert fits and ooms, d
    assert all(p["outcome"] == "oom" for p in ooms)
    assert d["value"] == max(p["value"] for p in fits) < d["first_oom"] == min(p["value"] for p in ooms)
    store = Store.from_environment()
    runs = {r.id: r for r in store.run_records(tag=PROBE_TAG)}
    assert sorted(runs) == sorted(p["run_id"] for p in d["probes"])  # each probe recorded
    assert all(runs[p["run_id"]].outcome_device == "cpu" for p in ooms)
