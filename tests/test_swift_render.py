"""What the ms-swift backend renders: `swift sft` arguments by ms-swift's documented names, its
multi-card environment, the DeepSpeed JSON it points at. A stand-in `swift` executable with an
`ms_swift-X.Y.Z.dist-info` beside it plays the install (rendering reads only its version); the
real run, which also proves ms-swift's own parser accepts the argv, is in test_swift.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from zerodeck.core.launch import llamafactory
from zerodeck.core.launch.backends import RenderError, render
from zerodeck.core.launch.context import RenderContext
from zerodeck.core.launch.swift import CLI_ENV, DS_NAME, ENV_NAME, to_argv
from zerodeck.core.recipe.model import Recipe

from .test_llamafactory_render import ctx_for, seed_recipe


def make_swift(root: Path, version: str) -> Path:
    bindir = root / "bin"
    bindir.mkdir(parents=True)
    (root / "lib" / "python3.11" / "site-packages" / f"ms_swift-{version}.dist-info").mkdir(parents=True)
    cli = bindir / "swift"
    cli.write_text("#!/bin/sh\nexit 0\n")
    cli.chmod(0o755)
    return cli


@pytest.fixture
def fake_swift(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cli = make_swift(tmp_path / "swiftenv", "4.6.0")
    monkeypatch.setenv(CLI_ENV, str(cli))
    return cli


def swift_recipe(**updates: dict) -> Recipe:
    updates = {**updates, "launch": {"backend": "swift", **updates.get("launch", {})}}
    return seed_recipe(**updates)


def pairs(argv: list[str]) -> dict[str, list[str]]:
    """`--name v1 v2 --other v` -> {"name": ["v1", "v2"], "other": ["v"]}; a repeated name fails."""
    out: dict[str, list[str]] = {}
    key = None
    for a in argv:
        if a.startswith("--"):
            key = a[2:]
            assert key not in out, f"--{key} given twice"
            out[key] = []
        else:
            assert key is not None, f"value {a!r} before any --name"
            out[key].append(a)
    return out


def test_seed_recipe_lora_zero3_on_eight_npus(tmp_path: Path, fake_swift: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TORCH_EXTENSIONS_DIR", raising=False)
    recipe = swift_recipe(zero={"stage": 3}, data={"dataset": None, "path": "data/train.jsonl"})
    ctx = ctx_for(tmp_path)
    launch = render(recipe, ctx)

    assert launch.backend == "swift" and launch.argv[:2] == [str(fake_swift), "sft"]
    assert launch.cwd == ctx.run_dir and launch.ranks == 8
    a = pairs(launch.argv[2:])
    assert a["model"] == ["Qwen/Qwen2.5-7B"]
    assert a["tuner_type"] == ["lora"] and "train_type" not in a  # ms-swift 4 has no train_type
    assert (a["lora_rank"], a["lora_alpha"], a["target_modules"]) == (["8"], ["16"], ["all-linear"])
    assert a["deepspeed"] == [str(ctx.run_dir / DS_NAME)]
    ds = json.loads(launch.files[DS_NAME])
    assert ds["zero_optimization"]["stage"] == 3 and "train_batch_size" not in ds
    assert a["dataset"] == [str((tmp_path / "data" / "train.jsonl").resolve()) + "#20000"]
    assert a["template"] == ["qwen"]
    assert (a["per_device_train_batch_size"], a["gradient_accumulation_steps"], a["max_length"]) == (
        ["1"], ["8"], ["2048"])
    assert (a["num_train_epochs"], a["learning_rate"], a["torch_dtype"]) == (["3.0"], ["0.0001"], ["bfloat16"])
    assert a["gradient_checkpointing"] == ["true"] and a["attn_impl"] == ["sdpa"]
    assert (a["bf16"], a["fp16"]) == (["true"], ["false"])  # as the DeepSpeed JSON says
    assert ds["bf16"]["enabled"] is True and ds["fp16"]["enabled"] is False
    # The output stays where zerodeck looks for logging.jsonl: no v0-<timestamp> folder.
    assert a["output_dir"] == [str(ctx.run_dir / "output")] and a["add_version"] == ["false"]
    assert a["report_to"] == ["none"] and a["split_dataset_ratio"] == ["0.0"]
    assert "max_steps" not in a and "quant_bits" not in a

    env = launch.env
    assert env["NPROC_PER_NODE"] == "8" and env["MASTER_PORT"] == str(ctx.master_port)
    assert env["ASCEND_RT_VISIBLE_DEVICES"] == "0,1,2,3,4,5,6,7" and "CUDA_VISIBLE_DEVICES" not in env
    assert env["ZERODECK_RUN_TAG"] == str(ctx.run_dir)
    # DeepSpeed's JIT ops are cached per environment: the swift CLI's, not zerodeck's own.
    assert env["TORCH_EXTENSIONS_DIR"] == str(llamafactory.extensions_dir(fake_swift))
    assert json.loads(launch.files[ENV_NAME])["ms_swift"] == "4.6.0"


def test_ms_swift_3_gets_train_type(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CLI_ENV, str(make_swift(tmp_path / "old", "3.12.1")))
    a = pairs(render(swift_recipe(method={"kind": "full"}), ctx_for(tmp_path)).argv[2:])
    assert a["train_type"] == ["full"] and "tuner_type" not in a
    assert not {"lora_rank", "lora_alpha", "target_modules", "deepspeed"} & set(a)


def test_devices_steps_cpu_and_cuda(tmp_path: Path, fake_swift: Path) -> None:
    recipe = swift_recipe(hardware={"device": "cuda", "cards": 2, "devices": [4, 6]},
                          train={"max_steps": 50, "precision": "fp16", "attn": "flash", "grad_ckpt": False})
    launch = render(recipe, ctx_for(tmp_path, devices=[4, 6]))
    a = pairs(launch.argv[2:])
    assert a["max_steps"] == ["50"] and a["torch_dtype"] == ["float16"] and a["attn_impl"] == ["flash_attn"]
    assert (a["bf16"], a["fp16"]) == (["false"], ["true"])
    assert a["gradient_checkpointing"] == ["false"] and a["dataset"] == ["train_sft#20000"]
    assert launch.env["CUDA_VISIBLE_DEVICES"] == "4,6" and launch.env["NPROC_PER_NODE"] == "2"

    cpu = render(swift_recipe(hardware={"device": "cpu", "cards": 2}), ctx_for(tmp_path, devices=[0, 1]))
    assert cpu.env["CUDA_VISIBLE_DEVICES"] == "" and "ASCEND_RT_VISIBLE_DEVICES" not in cpu.env
    text = render(swift_recipe(data={"format": "text"}), ctx_for(tmp_path))
    assert text.argv[1] == "pt"


def test_lora_targets_and_options(tmp_path: Path, fake_swift: Path) -> None:
    recipe = swift_recipe(method={"target": ["q_proj", "v_proj"]},
                          launch={"options": {"warmup_ratio": 0.05, "lr_scheduler_type": "cosine",
                                              "learning_rate": 2e-5, "use_hf": True, "save_steps": None}})
    a = pairs(render(recipe, ctx_for(tmp_path)).argv[2:])
    assert a["target_modules"] == ["q_proj", "v_proj"]
    # The recipe's options win over the rendered value, and reach the argv once.
    assert a["learning_rate"] == ["2e-05"] and a["warmup_ratio"] == ["0.05"] and a["use_hf"] == ["true"]
    assert "save_steps" not in a
    assert to_argv({"deepspeed": {"zero_optimization": {"stage": 2}}}) == [
        "--deepspeed", '{"zero_optimization":{"stage":2}}']
    with pytest.raises(RenderError, match="not an ms-swift argument name"):
        to_argv({"bad name": 1})


def test_refusals(tmp_path: Path, fake_swift: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RenderError, match="'freeze' has no ms-swift equivalent"):
        render(swift_recipe(method={"kind": "freeze"}), ctx_for(tmp_path))
    with pytest.raises(RenderError, match="needs `path`"):
        render(swift_recipe(data={"dataset": None, "path": None}), ctx_for(tmp_path))
    monkeypatch.setenv(CLI_ENV, str(tmp_path / "nowhere" / "swift"))
    with pytest.raises(RenderError, match="ZERODECK_SWIFT_CLI = .* is not an executable file"):
        render(swift_recipe(), ctx_for(tmp_path))
    monkeypatch.delenv(CLI_ENV)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(RenderError, match="swift not found on PATH"):
        render(swift_recipe(), ctx_for(tmp_path))


def test_quantized_lora_renders_for_both_backends(tmp_path: Path, fake_swift: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = swift_recipe(method={"quant_bits": 4}, hardware={"device": "cuda"})
    a = pairs(render(recipe, ctx_for(tmp_path)).argv[2:])
    assert a["quant_method"] == ["bnb"] and a["quant_bits"] == ["4"] and a["tuner_type"] == ["lora"]

    lf_cli = tmp_path / "lfenv" / "bin" / "llamafactory-cli"
    lf_cli.parent.mkdir(parents=True)
    lf_cli.write_text("#!/bin/sh\nexit 0\n")
    lf_cli.chmod(0o755)
    monkeypatch.setenv(llamafactory.CLI_ENV, str(lf_cli))
    files: dict[str, str] = {}
    lf_recipe = seed_recipe(method={"quant_bits": 8}, hardware={"device": "cuda"})
    args = llamafactory.training_args(lf_recipe, ctx_for(tmp_path), files)
    assert (args["quantization_bit"], args["quantization_method"]) == (8, "bnb")
    # A GPTQ / AWQ checkpoint is loaded as it is: neither backend asks for quantisation again.
    pre = seed_recipe(model={"quantization": "gptq"}, hardware={"device": "cuda"})
    assert "quantization_bit" not in llamafactory.training_args(pre, ctx_for(tmp_path), files)
    pre_swift = swift_recipe(model={"quantization": "awq"})
    assert "quant_bits" not in pairs(render(pre_swift, ctx_for(tmp_path)).argv[2:])


def test_context_is_untouched_by_render(tmp_path: Path, fake_swift: Path) -> None:
    ctx: RenderContext = ctx_for(tmp_path)
    render(swift_recipe(zero={"stage": 2}), ctx)
    assert not ctx.run_dir.exists()  # rendering writes nothing: the supervisor writes the files


def test_the_swift_example_recipe_validates_and_renders(tmp_path: Path, fake_swift: Path) -> None:
    from zerodeck.core.recipe import load_recipe_file

    from .conftest import FIXTURES

    recipe = load_recipe_file(FIXTURES / "recipes" / "swift" / "qwen2.5-7b-lora-swift.toml")
    a = pairs(render(recipe, ctx_for(tmp_path)).argv[2:])
    assert a["model"] == ["Qwen/Qwen2.5-7B-Instruct"] and a["dataset"] == ["AI-ModelScope/alpaca-gpt4-data-zh#20000"]
