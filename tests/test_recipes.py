from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from zerodeck.core.recipe.grid import expand
from zerodeck.core.recipe.load import (
    RecipeError,
    content_hash,
    load_recipe,
    load_recipe_file,
    parse_toml,
    to_toml,
)

from .conftest import FIXTURES, ROOT

BAD = sorted((FIXTURES / "recipes" / "bad").glob("*.toml"))


def _expect(path: Path) -> tuple[int, str]:
    m = re.match(r"# expect: (\d+) (\S+)", path.read_text().splitlines()[0])
    assert m, f"{path} lacks its expect header"
    return int(m.group(1)), m.group(2)


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_validate_reports_file_line_field(cli, path: Path) -> None:
    line, field = _expect(path)
    code, out, err = cli("recipes", "validate", str(path))
    assert code == 2
    first = out.splitlines()[0]
    assert first.startswith(f"{path}:{line}: {field}: "), first
    assert "Traceback" not in out + err


def test_validate_all_bad_at_once_lists_every_file(cli) -> None:
    code, out, _ = cli("recipes", "validate", str(FIXTURES / "recipes" / "bad"))
    assert code == 2
    reported = {line.split(":")[0] for line in out.splitlines()}
    assert reported == {str(p) for p in BAD}


def test_shipped_catalog_is_valid_and_complete(cli) -> None:
    code, out, err = cli("recipes", "list", "--json")
    assert code == 0, err
    rows = json.loads(out)
    names = {r["name"] for r in rows}
    for size, samples in (("7b", "20k"), ("14b", "40k"), ("32b", "80k"), ("72b", "150k")):
        for z in (0, 2, 3):
            assert f"qwen2.5-{size}-lora-z{z}-s{samples}" in names
    assert {"demo-cpu-zero0", "demo-cpu-zero2", "demo-cpu-zero3"} <= names
    row = next(r for r in rows if r["name"] == "qwen2.5-32b-lora-z3-s80k")
    assert row["zero_stage"] == 3 and row["cards"] == 8 and row["device"] == "npu"
    assert row["data_samples"] == 80000 and row["launcher"] == "llamafactory"
    assert row["path"].endswith("qwen2.5-32b-lora.toml")


def test_list_keeps_good_recipes_beside_bad(cli, tmp_path: Path) -> None:
    (tmp_path / "good.toml").write_text('name = "good"\n[model]\nname = "Qwen2.5-7B"\n')
    (tmp_path / "bad.toml").write_text('name = "bad"\n[model]\nname = "Qwen2.5-7B"\n[zero]\nstage = 7\n')
    code, out, err = cli("recipes", "list", "--dir", str(tmp_path), "--json")
    assert code == 2
    assert [r["name"] for r in json.loads(out)] == ["good"]
    assert f"{tmp_path / 'bad.toml'}:5: zero.stage:" in err


def test_unreadable_directory_is_one_line(cli, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "a.toml").write_text('name = "a"\n[model]\nname = "Qwen2.5-7B"\n')
    locked.chmod(0)
    try:
        import os

        if os.access(locked, os.R_OK):  # root ignores permissions
            pytest.skip("running as root: permissions are not enforced")
        code, _, err = cli("recipes", "list", "--dir", str(locked))
        assert code == 2 and "permission denied" in err
    finally:
        locked.chmod(0o755)


def test_grid_expands_with_stable_readable_names() -> None:
    recipe = load_recipe_file(ROOT / "recipes" / "qwen2.5-32b-lora.toml")
    members = expand(recipe)
    assert [m.name for m in members] == [
        "qwen2.5-32b-lora-z0-s80k", "qwen2.5-32b-lora-z2-s80k", "qwen2.5-32b-lora-z3-s80k"]
    assert [m.zero.stage for m in members] == [0, 2, 3]
    assert all("grid:qwen2.5-32b-lora" in m.tags for m in members)
    assert [m.name for m in expand(recipe)] == [m.name for m in members]


def test_grid_product_of_two_axes(tmp_path: Path) -> None:
    text = ('name = "g"\n[model]\nname = "Qwen2.5-7B"\n[data]\nsamples = 20000\n'
            '[grid]\n"model.name" = ["Qwen2.5-7B", "Qwen2.5-14B"]\n"zero.stage" = [0, 3]\n'
            '"train.seq_len" = [1024, 4096]\n')
    recipe = load_recipe(parse_toml(text, "g.toml"), "g.toml", text)
    names = [m.name for m in expand(recipe)]
    assert len(names) == 8 == len(set(names))
    assert "qwen2.5-14b-lora-z3-s20k-seq4096" in names


def test_toml_round_trip_keeps_content_hash() -> None:
    recipe = load_recipe_file(ROOT / "recipes" / "demo-cpu-zero3.toml")
    text = to_toml(recipe)
    again = load_recipe(parse_toml(text, "x.toml"), "x.toml", text, ROOT / "recipes")
    assert again == recipe
    assert content_hash(again) == content_hash(recipe)
    changed = recipe.model_copy(update={"name": "other"})
    assert content_hash(changed) != content_hash(recipe)


def test_expand_writes_member_files(cli, tmp_path: Path) -> None:
    code, out, _ = cli("recipes", "expand", str(ROOT / "recipes" / "qwen2.5-7b-lora.toml"),
                       "--out", str(tmp_path), "--json")
    assert code == 0
    rows = json.loads(out)
    assert len(rows) == 3
    for row in rows:
        member = load_recipe_file(row["path"])
        assert member.name == row["name"] and not member.grid


def test_expand_rebases_relative_data_paths(cli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "d.jsonl").write_text("{}\n")
    (src / "g.toml").write_text('name = "g"\n[model]\nname = "Qwen2.5-7B"\n[data]\npath = "d.jsonl"\n'
                                '[grid]\n"zero.stage" = [2, 3]\n')
    out_dir = tmp_path / "out" / "deeper"
    code, out, _ = cli("recipes", "expand", str(src / "g.toml"), "--out", str(out_dir), "--json")
    assert code == 0
    member = load_recipe_file(json.loads(out)[0]["path"])
    assert (out_dir / member.data.path).resolve() == (src / "d.jsonl").resolve()


def test_unknown_model_suggests_closest() -> None:
    with pytest.raises(RecipeError) as info:
        load_recipe_file(FIXTURES / "recipes" / "bad" / "unknown_model.toml")
    assert "did you mean" in str(info.value)


def test_local_model_path_with_config(tmp_path: Path) -> None:
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    (model_dir / "config.json").write_text(json.dumps({
        "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128,
        "vocab_size": 100, "model_type": "qwen2"}))
    (tmp_path / "r.toml").write_text('name = "r"\n[model]\npath = "m"\n')
    recipe = load_recipe_file(tmp_path / "r.toml")
    assert recipe.model.label == "m"
