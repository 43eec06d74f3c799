"""The planner: parameter counts, the seed verdicts, the shape of the memory model, advice, calibration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from zerodeck.core.plan.memory import PlanInput, estimate, lora_params
from zerodeck.core.plan.registry import lookup
from zerodeck.core.plan.verdict import matrix, plan, plan_recipe, verdict_of
from zerodeck.core.recipe.catalog import find_recipe

from .import_probe import heavy_modules_loaded

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name,count", [
    ("Qwen2.5-7B", 7_615_616_512),
    ("Qwen2.5-14B", 14_770_033_664),
    ("Qwen2.5-32B", 32_763_876_352),
])
def test_parameter_counts_match_the_published_models(name: str, count: int) -> None:
    assert lookup(name).params() == count


def test_qwen3_sizes_match_their_published_non_embedding_counts() -> None:
    # Model cards: 8B -> 6.95B non-embedding, 14B -> 13.2B, 32B -> 31.2B.
    for name, non_embed in [("Qwen3-8B", 6.95e9), ("Qwen3-14B", 13.2e9), ("Qwen3-32B", 31.2e9)]:
        a = lookup(name)
        got = a.layers * a.layer_params()
        assert abs(got - non_embed) / non_embed < 0.01, (name, got)


def test_lora_count_for_all_linear_targets() -> None:
    # ms-swift reports 17.89M trainable for Qwen-7B LoRA r8 on all linears; the Qwen2.5-7B
    # shape (GQA) gives rank x (9h + 2kv + 3I) per layer.
    a = lookup("Qwen2.5-7B")
    kv = a.kv_heads * a.head_dim
    assert lora_params(a, 8) == 8 * (9 * a.hidden + 2 * kv + 3 * a.intermediate) * a.layers


def _seed(name: str):
    recipe, _ = find_recipe(name)
    return plan_recipe(recipe)


def test_seed_scenarios_on_8x64gb_910b() -> None:
    assert _seed("qwen2.5-14b-lora-z0-s40k").verdict == "fits"
    assert _seed("qwen2.5-32b-lora-z0-s80k").verdict == "oom"
    z3 = _seed("qwen2.5-32b-lora-z3-s80k")
    assert z3.verdict == "fits" and z3.breakdown.total < 0.6 * z3.capacity_gib  # comfortably
    assert _seed("qwen2.5-72b-lora-z3-s150k").verdict in ("fits", "tight")


models = st.sampled_from(["Qwen2.5-0.5B", "Qwen2.5-7B", "Qwen2.5-14B", "Qwen2.5-72B", "Qwen3-8B"])


@settings(max_examples=60, deadline=None)
@given(model=models, method=st.sampled_from(["lora", "full", "freeze"]), cards=st.integers(2, 64),
       seq=st.sampled_from([256, 2048, 8192]), mb=st.integers(1, 8), ckpt=st.booleans())
def test_more_sharding_never_costs_more_per_card(model: str, method: str, cards: int, seq: int, mb: int,
                                                 ckpt: bool) -> None:
    # On one card ZeRO only adds buckets and gathered copies, so the property starts at two.
    base = PlanInput(arch=lookup(model), method=method, cards=cards, seq_len=seq, micro_batch=mb,  # type: ignore[arg-type]
                     grad_ckpt=ckpt)
    z0, z2, z3 = (estimate(base.with_(stage=s)).hard for s in (0, 2, 3))
    assert z3 <= z2 <= z0 + 1e-9
    off = estimate(base.with_(stage=3, offload="all")).hard
    assert off <= z3


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_checkpointing_lowers_activations(attn: str) -> None:
    inp = PlanInput(arch=lookup("Qwen2.5-7B"), attn=attn, seq_len=4096)  # type: ignore[arg-type]
    on, off = estimate(inp.with_(grad_ckpt=True)), estimate(inp.with_(grad_ckpt=False))
    assert on.activations < off.activations / 5


def test_eager_attention_costs_more_than_sdpa_without_checkpointing() -> None:
    inp = PlanInput(arch=lookup("Qwen2.5-7B"), grad_ckpt=False, seq_len=4096)
    assert estimate(inp.with_(attn="eager")).activations > 2 * estimate(inp).activations


def test_logits_dominate_at_long_sequences_for_qwen_vocab() -> None:
    bd = estimate(PlanInput(arch=lookup("Qwen2.5-7B"), seq_len=8192))
    assert bd.logits > bd.activations and bd.logits > 10


def test_optimizer_offload_moves_states_to_the_host() -> None:
    inp = PlanInput(arch=lookup("Qwen2.5-7B"), method="full", stage=2)
    on_card, offloaded = estimate(inp), estimate(inp.with_(offload="optimizer"))
    assert offloaded.optimizer == 0 < on_card.optimizer
    assert offloaded.host_gib > on_card.host_gib + 7.6 * 12 / 1.074 / 8 * 8 * 0.9


def test_runtime_baseline_per_device() -> None:
    a = lookup("Qwen2.5-0.5B")
    assert estimate(PlanInput(arch=a, device="npu")).runtime == pytest.approx(3.0)
    assert estimate(PlanInput(arch=a, device="cuda")).runtime < 1.5


def test_verdict_thresholds() -> None:
    assert verdict_of(50, 64) == "fits"
    assert verdict_of(60, 64) == "tight"
    assert verdict_of(65, 64) == "oom"


def test_oom_plan_suggests_a_change_that_fits() -> None:
    p = plan(PlanInput(arch=lookup("Qwen2.5-32B"), stage=0))
    assert p.verdict == "oom" and p.suggestion and "ZeRO-3" in p.suggestion
    assert p.max_micro_batch is None


def test_suggestion_names_micro_batch_or_checkpointing_when_that_is_cheapest() -> None:
    inp = PlanInput(arch=lookup("Qwen2.5-7B"), stage=3, micro_batch=64, grad_ckpt=False)
    p = plan(inp)
    assert p.verdict == "oom"
    assert p.suggestion is not None and ("checkpointing" in p.suggestion or "micro_batch" in p.suggestion)


def test_hopeless_plan_says_add_cards() -> None:
    p = plan(PlanInput(arch=lookup("Qwen2.5-72B"), method="full", cards=1, card_gb=8))
    assert p.verdict == "oom" and p.suggestion and "add cards" in p.suggestion


def test_fitting_plan_gives_the_largest_micro_batch() -> None:
    inp = PlanInput(arch=lookup("Qwen2.5-7B"), stage=3)
    p = plan(inp)
    assert p.verdict == "fits" and p.max_micro_batch and p.max_micro_batch >= 1
    at_max = estimate(inp.with_(micro_batch=p.max_micro_batch)).hard
    above = estimate(inp.with_(micro_batch=p.max_micro_batch + 1)).hard
    assert verdict_of(at_max, 64) == "fits" and verdict_of(above, 64) != "fits"


def test_matrix_covers_models_and_stages() -> None:
    rows = matrix()
    assert [r["model"] for r in rows][:2] == ["Qwen2.5-0.5B", "Qwen2.5-1.5B"]
    by = {r["model"]: r for r in rows}
    assert by["Qwen2.5-32B"]["z0"] == "oom" and by["Qwen2.5-32B"]["z3"] == "fits"
    assert by["Qwen2.5-72B"]["z3_gib"] < by["Qwen2.5-72B"]["z0_gib"]


def test_calibration_from_recorded_runs(cli) -> None:
    from zerodeck.core.plan.calibration import calibration_table
    from zerodeck.store.api import Store

    store = Store.from_environment()
    store.save_snapshot(hash="h1", name="r", toml="", source_path=None)
    for pred, meas in [(40.0, 44.0), (30.0, 33.0), (20.0, 26.0)]:
        store.add_run(name="r", recipe_hash="h1", backend="llamafactory", device="npu", status="finished",
                      outcome="succeeded", predicted_peak_gib=pred, measured_peak_gib=meas)
    store.add_run(name="r", recipe_hash="h1", backend="llamafactory", device="npu", status="finished",
                  outcome="oom", predicted_peak_gib=40.0, measured_peak_gib=64.0)
    recipe, _ = find_recipe("qwen2.5-14b-lora-z0-s40k")
    p = plan_recipe(recipe, calibration=calibration_table(store))
    assert p.calibration_runs == 3 and p.calibration_factor == pytest.approx(1.1)
    assert p.calibrated_total_gib == pytest.approx(p.breakdown.total * 1.1)
    assert p.to_dict()["per_card_gib"]["total"] == round(p.breakdown.total, 2)  # raw stays raw
    assert plan_recipe(recipe).calibration_runs == 0  # no table: the raw physics only
    # the command line reads the existing store
    code, out, _ = cli("plan", "qwen2.5-14b-lora-z0-s40k", "--json")
    assert code == 0 and json.loads(out)["calibration_runs"] == 3
    code, out, _ = cli("plan", "--model", "Qwen2.5-14B", "--json")
    assert code == 0 and json.loads(out)["calibration_runs"] == 3


def test_planning_never_creates_a_store(cli, zd_home: Path) -> None:
    from zerodeck.core.plan.calibration import calibration_table

    assert calibration_table(None) == {}
    code, out, _ = cli("plan", "qwen2.5-14b-lora-z0-s40k", "--json")
    assert code == 0 and json.loads(out)["calibration_runs"] == 0
    assert not (zd_home / "zerodeck.db").exists()


def test_bitsandbytes_base_costs_more_than_gptq_at_the_same_bits() -> None:
    # PEFT upcasts bnb's non-quantised tensors to fp32 and bnb stores fp32 absmax; GPTQ does neither.
    base = PlanInput(arch=lookup("Qwen2.5-7B"), stage=0, cards=1, card_gb=80, device="cuda", quant_bits=4)
    gptq, bnb = estimate(base), estimate(base.with_(quant_format="bnb"))
    a = base.arch
    embed = a.vocab * a.hidden * (1 if a.tied_embeddings else 2)
    assert bnb.weights - gptq.weights > 2 * embed / 2**30  # the fp32 embeddings alone
    assert bnb.logits - gptq.logits == pytest.approx(a.vocab * a.hidden * 2 / 2**30)  # lm_head cast copy
    assert bnb.hard > gptq.hard


def test_lazily_created_states_fill_the_allocator_fragments() -> None:
    # Without DeepSpeed, the Adam moments are created at the first step(), after the first loss
    # phase, and settle into the cached loss blocks; DeepSpeed's partitions exist before and add up.
    a = lookup("Qwen2.5-1.5B")
    inp = PlanInput(arch=a, method="full", pure_16bit=True, stage=0, cards=1, card_gb=80,
                    device="cuda", seq_len=8192, reserved_only=True)
    full, lora = estimate(inp), estimate(inp.with_(method="lora"))
    states = full.gradients + full.optimizer
    assert full.total - lora.total < states - 0.5 * full.optimizer
    # the must-fit figure still counts every state (less what LoRA's own adapters hold)
    lora_own = lora.gradients + lora.optimizer + (lora.weights - full.weights)
    assert full.hard - lora.hard == pytest.approx(states - lora_own, abs=1e-6)
    fixed = estimate(inp.with_(fixed_length=True))
    assert full.total >= fixed.total


def test_cross_entropy_left_in_16_bit_costs_half_the_fp32_loss() -> None:
    # fp32 (current ForCausalLMLoss): saved log-softmax, nll grad, log-softmax grad, 4 bytes each;
    # 16 bit (Qwen v1 under DeepSpeed, no autocast): shifted copy, log-softmax, its grad, 2 each.
    inp = PlanInput(arch=lookup("Qwen2.5-7B"), seq_len=8192, cards=1, card_gb=200, fixed_length=True)
    full, half = estimate(inp), estimate(inp.with_(loss_fp32=False))
    assert half.logits == pytest.approx(full.logits * 6 / 12)
    assert half.hard < full.hard
    # what stays reserved: the 16-bit logits' block (fp32), the slice gradient's block (16 bit)
    vt = 8192 * inp.arch.vocab / 2**30
    assert full.total - half.total == pytest.approx(vt * (12 - 6), rel=1e-3)


def test_shifted_logits_copy_keeps_one_more_fp32_block_reserved() -> None:
    # Remote code (Qwen v1) copies shift_logits and autocast upcasts it: 2 + 2 + 4 + 4 bytes
    # allocated, the same peak as ForCausalLMLoss, but the log-softmax gradient's fp32 block finds
    # no freed block it fits and stays reserved: 4 bytes cached instead of the logits' 2.
    inp = PlanInput(arch=lookup("Qwen2.5-7B"), seq_len=8192, cards=1, card_gb=200, fixed_length=True)
    current, older = estimate(inp), estimate(inp.with_(loss_impl="shift_copy"))
    assert older.logits == pytest.approx(current.logits)
    assert older.hard == pytest.approx(current.hard)
    vt = 8192 * inp.arch.vocab / 2**30
    assert older.total - current.total == pytest.approx(vt * 2, rel=1e-3)


def test_dynamic_padding_caches_sets_of_a_typical_batch() -> None:
    # Variable-length batches leave about DYNAMIC_FRAG more loss-phase sets cached, of a typical
    # batch: a dataset whose median is 2500 tokens caches less at seq_len 8192 than one at 8192.
    from zerodeck.core.plan.memory import DYNAMIC_FRAG, LOGIT_BYTES

    inp = PlanInput(arch=lookup("Qwen2.5-7B"), seq_len=8192, cards=1, card_gb=200)
    fixed, worst = estimate(inp.with_(fixed_length=True)), estimate(inp)
    typical = estimate(inp.with_(typical_len=2500))
    assert fixed.total < typical.total < worst.total
    vt = inp.arch.vocab / 2**30
    moments = worst.optimizer  # made at the first step(), they settle in that cache
    assert worst.total - fixed.total == pytest.approx(DYNAMIC_FRAG * 8192 * vt * (LOGIT_BYTES + 2) - moments)
    assert typical.total - fixed.total == pytest.approx(DYNAMIC_FRAG * 2500 * vt * (LOGIT_BYTES + 2) - moments)
    assert typical.hard == worst.hard == fixed.hard  # the cache is elastic: never what must fit


def test_pure_16_bit_lora_keeps_peft_adapters_in_fp32() -> None:
    # PEFT makes the adapters in fp32 whatever the base dtype; only modules_to_save copies are 16 bit.
    from zerodeck.core.plan.memory import lora_params

    inp = PlanInput(arch=lookup("Qwen2.5-7B"), stage=0, cards=1, card_gb=200, pure_16bit=True)
    n = lora_params(inp.arch, inp.lora_rank)
    bd = estimate(inp)
    assert bd.gradients == pytest.approx(n * 4 / 2**30) and bd.optimizer == pytest.approx(n * 8 / 2**30)
    emb = estimate(inp.with_(train_embeddings=True))
    copies = 2 * inp.arch.vocab * inp.arch.hidden
    assert emb.optimizer - bd.optimizer == pytest.approx(copies * 4 / 2**30)  # bf16 moments


# -- the command line ---------------------------------------------------------------------------

CONTRACT_TERMS = {"weights", "gradients", "optimizer", "activations", "logits", "buffers", "runtime", "total"}


def test_plan_model_json_contract(cli) -> None:
    code, out, _ = cli("plan", "--model", "Qwen2.5-14B", "--stage", "0", "--json")
    assert code == 0
    d = json.loads(out)
    assert set(d["per_card_gib"]) >= CONTRACT_TERMS
    assert d["verdict"] == "fits" and d["capacity_gib"] == 64 and d["host_gib"] > 0
    parts = sum(v for k, v in d["per_card_gib"].items() if k != "total")
    assert parts == pytest.approx(d["per_card_gib"]["total"], abs=0.05)


def test_plan_flags_reach_the_model(cli) -> None:
    _, a, _ = cli("plan", "--model", "Qwen2.5-7B", "--method", "full", "--stage", "3", "--cards", "16",
                  "--card-gb", "80", "--device", "cuda", "--micro-batch", "2", "--seq-len", "4096",
                  "--no-grad-ckpt", "--attn", "eager", "--precision", "bf16", "--lora-rank", "16", "--json")
    d = json.loads(a)
    assert d["capacity_gib"] == 80 and d["cards"] == 16 and d["micro_batch"] == 2 and d["seq_len"] == 4096
    assert d["per_card_gib"]["runtime"] < 2


def test_plan_recipe_file_and_grid(cli) -> None:
    code, out, _ = cli("plan", str(ROOT / "recipes" / "qwen2.5-32b-lora.toml"), "--json")
    assert code == 0
    plans = json.loads(out)
    assert [p["zero_stage"] for p in plans] == [0, 2, 3]
    assert [p["verdict"] for p in plans][0] == "oom" and plans[2]["verdict"] == "fits"
    assert "ZeRO-3" in plans[0]["suggestion"] and plans[2]["max_micro_batch"] >= 1
    assert "80000 recommended" in plans[0]["data_advice"]


def test_plan_catalog_name(cli) -> None:
    code, out, _ = cli("plan", "demo-cpu-zero2", "--json")
    assert code == 0 and json.loads(out)["device"] == "cpu"


def test_plan_matrix_text_and_json(cli) -> None:
    code, out, _ = cli("plan", "--matrix")
    assert code == 0 and "Qwen2.5-72B" in out and "oom" in out
    code, out, _ = cli("plan", "--matrix", "--cards", "4", "--card-gb", "80", "--device", "cuda", "--json")
    d = json.loads(out)
    assert d["cards"] == 4 and len(d["rows"]) >= 7


def test_plan_local_model_directory(cli, tmp_path: Path) -> None:
    cfg = {"hidden_size": 896, "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
           "intermediate_size": 4864, "vocab_size": 151936, "tie_word_embeddings": True, "model_type": "qwen2"}
    (tmp_path / "my-model").mkdir()
    (tmp_path / "my-model" / "config.json").write_text(json.dumps(cfg))
    code, out, _ = cli("plan", "--model", str(tmp_path / "my-model"), "--json")
    assert code == 0 and json.loads(out)["total_params"] == 494_032_768


@pytest.mark.parametrize("argv,needle", [
    (["--model", "Qwen2.5-14b-instruct-typo"], "did you mean"),
    (["--model", "Qwen2.5-15B"], "unknown model"),
    (["--model", "Qwen2.5-7B", "--stage", "4"], "ZeRO stage must be 0, 1, 2 or 3"),
    (["--model", "Qwen2.5-7B", "--cards", "0"], "must be positive"),
    (["--model", "Qwen2.5-7B", "--card-gb", "-64"], "must be positive"),
    (["--model", "Qwen2.5-7B", "--seq-len", "-1"], "must be positive"),
    (["--model", "Qwen2.5-7B", "--offload", "all", "--stage", "2"], "needs --stage 3"),
    (["no-such-recipe"], "no such recipe"),
    ([], "give a RECIPE"),
])
def test_plan_bad_input_exits_2_with_one_line(cli, argv: list[str], needle: str) -> None:
    code, out, err = cli("plan", *argv)
    assert code == 2 and needle in err and "Traceback" not in err


def test_plan_model_dir_without_config(cli, tmp_path: Path) -> None:
    (tmp_path / "empty-model").mkdir()
    code, _, err = cli("plan", "--model", str(tmp_path / "empty-model"))
    assert code == 2 and "no config.json" in err


def test_offload_suggestion_states_the_host_ram_it_needs() -> None:
    p = plan(PlanInput(arch=lookup("Qwen2.5-72B"), method="full", stage=3))
    assert p.verdict == "oom" and p.suggestion and "offload" in p.suggestion
    assert "GiB host RAM per node" in p.suggestion


def test_bad_recipe_file_is_exit_2_with_its_line(cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[model]\nname = "Qwen2.5-7B"\n[zero]\nstage = 4\n')
    code, _, err = cli("plan", str(bad))
    assert code == 2 and "bad.toml:5" in err and "Traceback" not in err


def test_recipe_with_unknown_model_is_exit_2(cli, tmp_path: Path) -> None:
    bad = tmp_path / "m.toml"
    bad.write_text('name = "x"\n[model]\nname = "Qwen2.5-14B-Instruct-AWQ"\n')
    code, _, err = cli("plan", str(bad))
    assert code == 2 and "unknown model" in err


def test_instruct_and_hub_names_resolve_to_the_same_architecture() -> None:
    assert lookup("Qwen/Qwen2.5-14B-Instruct") == lookup("Qwen2.5-14B")
    assert lookup("qwen3-8b-base").params() == lookup("Qwen3-8B").params()


def test_planner_commands_import_no_torch(tmp_path: Path) -> None:

    data = tmp_path / "d.jsonl"
    data.write_text('{"instruction": "a", "output": "b"}\n')
    code = (
        "import sys, contextlib, io\n"
        "from zerodeck.core.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['plan', 'qwen2.5-14b-lora-z0-s40k', '--json'])\n"
        "    main(['plan', '--matrix'])\n"
        f"    main(['data', 'inspect', {str(data)!r}, '--model', 'Qwen2.5-7B'])\n"
    )
    assert heavy_modules_loaded(code) == []


def _catalog_members() -> list:
    from zerodeck.core.recipe.catalog import load_catalog

    return [m for e in load_catalog() if e.recipe is not None for m in e.members]


def test_every_term_of_the_total_is_a_bar_and_they_add_up() -> None:
    """The Plan screen's bars, headroom included, end where the total does (32B ZeRO-3 was 7.1 GiB short)."""
    from zerodeck.tui.widgets.plan_bars import TERMS, PlanBars, plan_numbers

    members = _catalog_members()
    assert any(m.name == "qwen2.5-32b-lora-z3-s80k" for m in members)
    for m in members:
        numbers = plan_numbers(plan_recipe(m))
        per = numbers["per_card_gib"]
        assert abs(sum(per[t] for t in TERMS) - per["total"]) < 1e-9, m.name
        bars = PlanBars()
        bars.numbers = numbers
        drawn = [line.split()[0] for line in bars.render().plain.splitlines()]
        assert drawn[: len(TERMS) + 1] == [*TERMS, "total"], m.name


def test_the_demo_plan_shows_real_sizes_not_zeros(cli) -> None:
    from zerodeck.tui.widgets.plan_bars import PlanBars, plan_numbers

    p = plan_recipe(find_recipe("demo-cpu-zero3")[0])
    bars = PlanBars()
    bars.numbers = plan_numbers(p)
    text = bars.render().plain
    assert "0.00 GiB" not in text and "KiB" in text and "MiB" in text
    assert "weights" in text and "320.6 KiB" in text  # 164,160 fp32 parameters over 2 ranks
    code, out, _ = cli("plan", "demo-cpu-zero3")
    assert code == 0 and "0.00 GiB" not in out and "320.6 KiB" in out and "≥ 64 (not searched further)" in out


def test_largest_micro_batch_is_bounded_by_the_data_and_the_search() -> None:
    from zerodeck.core.plan.verdict import MICRO_BATCH_SEARCH

    demo = find_recipe("demo-cpu-zero3")[0]
    p = plan_recipe(demo)  # 200 samples, 2 cards: the data would allow 100; the search stops at 64
    assert (p.max_micro_batch, p.max_micro_batch_bound) == (MICRO_BATCH_SEARCH, "search")
    assert p.max_micro_batch_text() == f"≥ {MICRO_BATCH_SEARCH} (not searched further)"
    four = demo.model_copy(update={"data": demo.data.model_copy(update={"samples": 4})})
    p = plan_recipe(four)  # a 4-sample demo: 2 per card per step, whatever memory would allow
    assert (p.max_micro_batch, p.max_micro_batch_bound) == (2, "data")
    assert p.max_micro_batch_text().startswith("2 (the data's 4 samples over 2 card(s) x grad_accum 1")
    accum = four.model_copy(update={"train": four.train.model_copy(update={"grad_accum": 4})})
    assert plan_recipe(accum).max_micro_batch == 1
    big = plan_recipe(find_recipe("qwen2.5-32b-lora-z3-s80k")[0])  # memory bounds it well below the data
    assert (big.max_micro_batch, big.max_micro_batch_bound) == (9, "memory")
    assert big.to_dict()["max_micro_batch_bound"] == "memory"
