"""What the LLaMA-Factory backend renders: YAML keys and values, the DeepSpeed JSON it points at,
the environment and PATH. No LLaMA-Factory install needed: a stand-in executable plays the CLI
(rendering only checks that it exists); the real run is in test_llamafactory.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from zerodeck.core.errors import BadInput
from zerodeck.core.launch.backends import RenderError
from zerodeck.core.launch.context import RenderContext
from zerodeck.core.launch.environment import ops_cache_dir
from zerodeck.core.launch.llamafactory import CLI_ENV, DS_NAME, YAML_NAME, render
from zerodeck.core.recipe import load_recipe_file
from zerodeck.core.recipe.model import Recipe

from .conftest import ROOT


def parse_yaml(text: str) -> dict:
    """The rendered format: comment lines, then one `key: <JSON value>` per line."""
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, _, value = line.partition(": ")
        assert key not in out, f"duplicate key {key}"
        out[key] = json.loads(value)
    return out


@pytest.fixture
def fake_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "lfenv" / "bin"
    bindir.mkdir(parents=True)
    cli = bindir / "llamafactory-cli"
    cli.write_text("#!/bin/sh\nexit 0\n")
    cli.chmod(0o755)
    monkeypatch.setenv(CLI_ENV, str(cli))
    return cli


def ctx_for(tmp_path: Path, recipe_dir: Path | None = None, devices: list[int] | None = None) -> RenderContext:
    return RenderContext(
        run_id=7,
        run_dir=tmp_path / "runs" / "7",
        recipe_dir=recipe_dir or tmp_path,
        master_port=29517,
        visible_devices=devices if devices is not None else list(range(8)),
        python="/usr/bin/python3",
    )


def seed_recipe(**updates: dict) -> Recipe:
    recipe = load_recipe_file(ROOT / "recipes" / "qwen2.5-7b-lora.toml")
    data = recipe.model_dump()
    data.pop("grid")
    for section, values in updates.items():
        data[section] = {**data[section], **values}
    return Recipe.model_validate(data, strict=False)


def test_seed_recipe_zero3_on_npu(tmp_path: Path, fake_cli: Path) -> None:
    recipe = seed_recipe(zero={"stage": 3})
    ctx = ctx_for(tmp_path)
    launch = render(recipe, ctx)

    assert launch.backend == "llamafactory"
    assert launch.argv == [str(fake_cli), "train", YAML_NAME]
    assert launch.cwd == ctx.run_dir and launch.ranks == 8
    args = parse_yaml(launch.files[YAML_NAME])
    assert args["model_name_or_path"] == "Qwen/Qwen2.5-7B"
    assert (args["stage"], args["do_train"], args["finetuning_type"]) == ("sft", True, "lora")
    assert (args["lora_rank"], args["lora_alpha"], args["lora_target"]) == (8, 16, "all")
    assert args["template"] == "qwen" and args["dataset"] == "train_sft"
    assert args["dataset_dir"] == str(tmp_path / "data")
    assert (args["cutoff_len"], args["max_samples"]) == (2048, 20000)
    assert (args["per_device_train_batch_size"], args["gradient_accumulation_steps"]) == (1, 8)
    assert args["learning_rate"] == pytest.approx(1e-4) and args["num_train_epochs"] == 3.0
    assert "max_steps" not in args
    assert (args["bf16"], args["fp16"], args["disable_gradient_checkpointing"]) == (True, False, False)
    assert args["output_dir"] == str(ctx.run_dir / "output")
    assert args["report_to"] == "none" and args["logging_steps"] == 1
    assert args["logging_nan_inf_filter"] is False  # a NaN loss is logged as NaN, not as the earlier mean

    assert args["deepspeed"] == str(ctx.run_dir / DS_NAME)
    ds = json.loads(launch.files[DS_NAME])
    assert ds["zero_optimization"]["stage"] == 3
    assert "train_batch_size" not in ds  # the world-size assertion trap
    assert ds["train_micro_batch_size_per_gpu"] == args["per_device_train_batch_size"]
    assert ds["gradient_accumulation_steps"] == args["gradient_accumulation_steps"]
    assert ds["bf16"]["enabled"] is True and ds["fp16"]["enabled"] is False
    assert "auto" not in json.dumps(ds)

    env = launch.env
    assert env["FORCE_TORCHRUN"] == "1" and env["NPROC_PER_NODE"] == "8"
    assert env["MASTER_PORT"] == "29517"
    assert env["ASCEND_RT_VISIBLE_DEVICES"] == "0,1,2,3,4,5,6,7"
    assert "CUDA_VISIBLE_DEVICES" not in env and "DS_ACCELERATOR" not in env
    # torchrun is found by name: the CLI's own bin directory must come first.
    assert env["PATH"].split(os.pathsep)[0] == str(fake_cli.parent)
    # What every backend sets (the tag `stop` finds the ranks by), and where the metrics land.
    assert env["ZERODECK_RUN_TAG"] == str(ctx.run_dir) and env["ZERODECK_RUN_ID"] == "7"
    assert env["ZERODECK_OUTPUT_DIR"] == args["output_dir"]


def test_op_cache_follows_the_cli_environment(tmp_path: Path, fake_cli: Path, monkeypatch) -> None:
    monkeypatch.delenv("TORCH_EXTENSIONS_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    site = fake_cli.parent.parent / "lib" / "python3.11" / "site-packages"
    for dist in ("torch-2.13.0+cpu", "deepspeed-0.18.4"):
        (site / f"{dist}.dist-info").mkdir(parents=True)
    launch = render(seed_recipe(), ctx_for(tmp_path))
    ops = Path(launch.env["TORCH_EXTENSIONS_DIR"])
    assert ops.parent == tmp_path / "cache" / "zerodeck" / "torch_extensions"
    assert ops.name.startswith("py311-torch2.13.0+cpu-ds0.18.4-")
    # Keyed by the CLI environment's root as well: the same versions elsewhere get another cache.
    assert ops == ops_cache_dir(python="py311", torch="2.13.0+cpu", deepspeed="0.18.4",
                                install_paths=[fake_cli.parent.parent], cache_root=tmp_path / "cache")
    # The run records the CLI environment's versions, not zerodeck's.
    versions = json.loads(launch.files["llamafactory_env.json"])
    assert versions["cli"] == str(fake_cli)
    assert (versions["torch"], versions["deepspeed"], versions["transformers"]) == ("2.13.0+cpu", "0.18.4", None)


def test_zero0_has_no_deepspeed(tmp_path: Path, fake_cli: Path) -> None:
    launch = render(seed_recipe(zero={"stage": 0}), ctx_for(tmp_path))
    assert "deepspeed" not in parse_yaml(launch.files[YAML_NAME])
    assert DS_NAME not in launch.files


def test_zero2_offload_points_at_its_json(tmp_path: Path, fake_cli: Path) -> None:
    launch = render(seed_recipe(zero={"stage": 2, "offload": "optimizer"}), ctx_for(tmp_path))
    ds = json.loads(launch.files[DS_NAME])
    assert ds["zero_optimization"]["stage"] == 2
    assert ds["zero_optimization"]["offload_optimizer"]["device"] == "cpu"


def test_cuda_and_cpu_devices(tmp_path: Path, fake_cli: Path) -> None:
    cuda = render(seed_recipe(hardware={"device": "cuda", "cards": 2}), ctx_for(tmp_path, devices=[2, 3])).env
    assert cuda["CUDA_VISIBLE_DEVICES"] == "2,3" and cuda["NPROC_PER_NODE"] == "2"
    assert "ASCEND_RT_VISIBLE_DEVICES" not in cuda
    cpu = render(seed_recipe(hardware={"device": "cpu", "cards": 2}), ctx_for(tmp_path, devices=[0, 1])).env
    assert cpu["DS_ACCELERATOR"] == "cpu" and cpu["CUDA_VISIBLE_DEVICES"] == ""
    assert "ASCEND_RT_VISIBLE_DEVICES" not in cpu


def test_local_model_and_data_file(tmp_path: Path, fake_cli: Path) -> None:
    recipe_dir = tmp_path / "recipes"
    model_dir = recipe_dir / "models" / "tiny"
    model_dir.mkdir(parents=True)
    (model_dir / "config.json").write_text(
        json.dumps({"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                    "intermediate_size": 128, "vocab_size": 400, "model_type": "qwen2"})
    )
    recipe = seed_recipe(
        model={"name": None, "path": "models/tiny"},
        data={"dataset": None, "path": "data/train.jsonl", "template": None},
        train={"max_steps": 5, "lr": 2e-5, "precision": "fp32", "grad_ckpt": False},
        zero={"stage": 3},
    )
    ctx = ctx_for(tmp_path, recipe_dir=recipe_dir)
    launch = render(recipe, ctx)
    args = parse_yaml(launch.files[YAML_NAME])
    assert args["model_name_or_path"] == str(model_dir)
    assert args["template"] == "default"  # no registry name to infer a chat template from
    assert args["max_steps"] == 5
    assert (args["bf16"], args["fp16"], args["disable_gradient_checkpointing"]) == (False, False, True)
    # A data file becomes a dataset registered in the run directory.
    assert args["dataset_dir"] == str(ctx.run_dir)
    info = json.loads(launch.files["dataset_info.json"])
    assert info[args["dataset"]] == {"file_name": str(recipe_dir / "data" / "train.jsonl"), "formatting": "alpaca"}
    # ZeRO-3 bucket sizes come from the model's own config.json (hidden 64), found via recipe_dir.
    assert json.loads(launch.files[DS_NAME])["zero_optimization"]["reduce_bucket_size"] == 64 * 64


def test_small_floats_stay_floats_in_yaml(tmp_path: Path, fake_cli: Path) -> None:
    # YAML 1.1 loaders (PyYAML, which LLaMA-Factory's OmegaConf uses) read `1e-05` as a string.
    launch = render(seed_recipe(train={"lr": 1e-5}), ctx_for(tmp_path))
    line = next(ln for ln in launch.files[YAML_NAME].splitlines() if ln.startswith("learning_rate:"))
    assert line == "learning_rate: 1.0e-05"


def test_options_merge_over_and_cli_is_not_an_argument(tmp_path: Path, fake_cli: Path, monkeypatch) -> None:
    monkeypatch.delenv(CLI_ENV)
    recipe = seed_recipe(
        launch={"options": {"cli": str(fake_cli), "cutoff_len": 4096, "warmup_ratio": 0.1, "report_to": "tensorboard"},
                "env": {"HCCL_CONNECT_TIMEOUT": "1200"}},
    )
    launch = render(recipe, ctx_for(tmp_path))
    args = parse_yaml(launch.files[YAML_NAME])
    assert (args["cutoff_len"], args["warmup_ratio"], args["report_to"]) == (4096, 0.1, "tensorboard")
    assert "cli" not in args
    assert launch.argv[0] == str(fake_cli)
    assert launch.env["HCCL_CONNECT_TIMEOUT"] == "1200"


def test_option_key_cannot_inject_yaml(tmp_path: Path, fake_cli: Path) -> None:
    recipe = seed_recipe(launch={"options": {"x: 1\ndeepspeed": "y"}})
    with pytest.raises(BadInput, match="launch.options"):
        render(recipe, ctx_for(tmp_path))


def test_missing_cli_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CLI_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RenderError) as info:
        render(seed_recipe(), ctx_for(tmp_path))
    assert "llamafactory-cli not found" in str(info.value) and "\n" not in str(info.value)
    monkeypatch.setenv(CLI_ENV, str(tmp_path / "nope" / "llamafactory-cli"))
    with pytest.raises(RenderError, match=CLI_ENV):
        render(seed_recipe(), ctx_for(tmp_path))


@pytest.mark.parametrize(("name", "message"), [("zerodeck-tiny", "not a Hugging Face model"),
                                               ("Qwen2.5-8B", "unknown model")])
def test_model_names_that_cannot_map(tmp_path: Path, fake_cli: Path, name: str, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        render(seed_recipe(model={"name": name}), ctx_for(tmp_path))


def test_hub_id_passes_through(tmp_path: Path, fake_cli: Path) -> None:
    launch = render(seed_recipe(model={"name": "Qwen/Qwen2.5-7B-Instruct"}), ctx_for(tmp_path))
    assert parse_yaml(launch.files[YAML_NAME])["model_name_or_path"] == "Qwen/Qwen2.5-7B-Instruct"


def test_refuses_transformers_457_lora_deepspeed(tmp_path: Path, fake_cli: Path) -> None:
    site = fake_cli.parent.parent / "lib" / "python3.11" / "site-packages"
    (site / "torch-2.13.0+cpu.dist-info").mkdir(parents=True)
    bad = site / "transformers-4.57.1.dist-info"
    bad.mkdir()
    with pytest.raises(RenderError, match="zip"):
        render(seed_recipe(zero={"stage": 3}), ctx_for(tmp_path))
    render(seed_recipe(zero={"stage": 0}), ctx_for(tmp_path))  # no DeepSpeed: fine
    bad.rename(site / "transformers-5.5.4.dist-info")
    render(seed_recipe(zero={"stage": 3}), ctx_for(tmp_path))


def test_refuses_cpu_zero3_with_deepspeed_before_the_gloo_gather_fix(tmp_path: Path, fake_cli: Path) -> None:
    site = fake_cli.parent.parent / "lib" / "python3.11" / "site-packages"
    old = site / "deepspeed-0.18.4.dist-info"
    old.mkdir(parents=True)
    cpu = {"device": "cpu", "cards": 2, "card_gb": 16.0}
    with pytest.raises(RenderError, match=r"deepspeed 0\.18\.4 in .*ZeRO-3 on CPU \(gloo\).*>= 0\.19\.8"):
        render(seed_recipe(zero={"stage": 3}, hardware=cpu), ctx_for(tmp_path))
    # Only ZeRO-3 gathers parameters, and only gloo runs its handles unordered.
    render(seed_recipe(zero={"stage": 2}, hardware=cpu), ctx_for(tmp_path))
    render(seed_recipe(zero={"stage": 3}), ctx_for(tmp_path))  # the seed recipe's NPU cards
    old.rename(site / "deepspeed-0.19.8.dist-info")
    render(seed_recipe(zero={"stage": 3}, hardware=cpu), ctx_for(tmp_path))


def test_zerodeck_run_without_llamafactory_is_recorded_failed(cli, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(CLI_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no llamafactory-cli anywhere
    recipe = tmp_path / "lf.toml"
    recipe.write_text('name = "lf"\n[model]\nname = "Qwen2.5-0.5B"\n[data]\ndataset = "x"\n'
                      '[hardware]\ndevice = "cpu"\ncards = 2\n[launch]\nbackend = "llamafactory"\n')
    code, out, err = cli("run", str(recipe), "--json")
    assert code == 1
    assert "llamafactory-cli not found on PATH" in err and "Traceback" not in err
    code, out, _ = cli("runs", "--json")
    (run,) = json.loads(out)
    assert (run["status"], run["outcome"]) == ("finished", "failed")
    assert "llamafactory-cli not found" in run["reason"]
