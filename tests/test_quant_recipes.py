"""Quantised LoRA in recipes: what validates on each device, how it is refused on an NPU, and that
the planner counts the quantised base weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from zerodeck.core.recipe import RecipeError, load_recipe_file
from zerodeck.core.recipe.load import content_hash

from .conftest import ROOT

SEED = (ROOT / "recipes" / "qwen2.5-7b-lora.toml").read_text()


def variant(tmp_path: Path, name: str, *, device: str = "npu", method: str = "", model: str = "",
            grid: str = "") -> Path:
    text = SEED.replace('device = "npu"', f'device = "{device}"')
    text = text.replace('target = "all"\n', 'target = "all"\n' + method)
    text = text.replace('name = "Qwen2.5-7B"\n', 'name = "Qwen2.5-7B"\n' + model)
    if grid:
        text = text.split("[grid]")[0] + "[grid]\n" + grid
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_bitsandbytes_on_npu_is_refused_with_the_alternatives(tmp_path: Path, cli) -> None:
    path = variant(tmp_path, "q4-npu", method="quant_bits = 4\n")
    code, out, err = cli("recipes", "validate", str(path))
    assert code == 2, (out, err)
    lines = out.strip().splitlines()  # each problem on stdout, the count on stderr
    assert len(lines) == 1, lines
    where = f"{path}:{line_of(path, 'quant_bits')}: method.quant_bits: "
    assert lines[0].startswith(where), lines[0]
    assert "bitsandbytes" in lines[0] and "Ascend" in lines[0]
    assert "ZeRO-3" in lines[0] and "smaller model" in lines[0]
    # The same refusal stops `plan` and `run` before anything starts.
    assert cli("plan", str(path))[0] == 2
    code, _, err = cli("run", str(path), "--detach")
    assert code == 2 and "method.quant_bits" in err


@pytest.mark.parametrize("device", ["cuda", "cpu"])
def test_bitsandbytes_validates_off_the_npu(tmp_path: Path, cli, device: str) -> None:
    for bits in (4, 8):
        path = variant(tmp_path, f"q{bits}-{device}", device=device, method=f"quant_bits = {bits}\n")
        code, out, err = cli("recipes", "validate", str(path))
        assert code == 0, err


def test_prequantised_checkpoints_validate_on_every_device(tmp_path: Path, cli) -> None:
    for device in ("npu", "cuda"):
        path = variant(tmp_path, f"gptq-{device}", device=device, model='quantization = "gptq"\n')
        assert cli("recipes", "validate", str(path))[0] == 0
    bad = variant(tmp_path, "gptq-bad", model='quantization = "int3"\n')
    code, out, _ = cli("recipes", "validate", str(bad))
    assert code == 2 and f"{bad}:{line_of(bad, 'int3')}: model.quantization:" in out


def test_quantisation_needs_lora_and_only_one_kind(tmp_path: Path) -> None:
    full = variant(tmp_path, "q-full", device="cuda", method="quant_bits = 4\n")
    full.write_text(full.read_text().replace('kind = "lora"', 'kind = "full"'))
    with pytest.raises(RecipeError, match=r"method.quant_bits: quantised weights cannot be trained: needs method"):
        load_recipe_file(full)
    both = variant(tmp_path, "q-both", device="cuda", method="quant_bits = 4\n", model='quantization = "awq"\n')
    with pytest.raises(RecipeError, match=r"method.quant_bits: the model is already quantised \(awq\)"):
        load_recipe_file(both)
    odd = variant(tmp_path, "q-odd", device="cuda", method="quant_bits = 3\n")
    with pytest.raises(RecipeError, match=r"method.quant_bits"):
        load_recipe_file(odd)


def test_a_grid_that_puts_bitsandbytes_on_the_npu_is_refused_at_its_axis(tmp_path: Path) -> None:
    path = variant(tmp_path, "q-grid", device="cuda", method="quant_bits = 4\n",
                   grid='"hardware.device" = ["cuda", "npu"]\n')
    with pytest.raises(RecipeError) as info:
        load_recipe_file(path)
    text = str(info.value)
    assert f"{path}:{line_of(path, 'hardware.device')}: grid.hardware.device: member " in text
    assert "bitsandbytes" in text


def test_the_planner_counts_quantised_base_weights(tmp_path: Path, cli) -> None:
    def weights(path: Path) -> float:
        code, out, err = cli("plan", str(path), "--json")
        assert code == 0, err
        data = json.loads(out)
        data = data[0] if isinstance(data, list) else data
        return float(data["per_card_gib"]["weights"])

    plain = weights(variant(tmp_path, "plain", device="cuda", grid='"zero.stage" = [0]\n'))
    q4 = weights(variant(tmp_path, "q4", device="cuda", method="quant_bits = 4\n", grid='"zero.stage" = [0]\n'))
    q8 = weights(variant(tmp_path, "q8", device="cuda", method="quant_bits = 8\n", grid='"zero.stage" = [0]\n'))
    gptq = weights(variant(tmp_path, "gptq", device="cuda", model='quantization = "gptq"\n',
                           grid='"zero.stage" = [0]\n'))
    # 7.6e9 parameters: ~14 GiB in bf16; the linear layers at half a byte (4-bit) or one byte (8-bit),
    # the 1.1e9 embedding parameters in fp32 with bitsandbytes (PEFT upcasts them).
    assert 13.5 < plain < 15.0
    assert q4 < q8 < plain and q4 < 0.6 * plain and q8 < 0.8 * plain
    assert gptq < q4  # no fp32 upcast of the embeddings, no bitsandbytes absmax blocks


def test_recipes_without_quantisation_keep_their_content_hash() -> None:
    # The ids runs already point at (computed before these keys existed) must not move.
    assert content_hash(load_recipe_file(ROOT / "recipes" / "demo-cpu-zero3.toml")) == "60efe0ff06e412e7"
    assert content_hash(load_recipe_file(ROOT / "recipes" / "qwen2.5-72b-lora.toml")) == "933219380901175d"
