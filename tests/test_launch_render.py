"""Rendering: DeepSpeed JSON with numbers, launcher argv, environment, placeholders, registry."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest
from zerodeck.core.launch.backends import RenderError, render
from zerodeck.core.launch.context import RenderContext
from zerodeck.core.launch.ds_config import render_ds_config
from zerodeck.core.launch.environment import job_env, mask_env
from zerodeck.core.launch.ports import pick_port, port_is_free
from zerodeck.core.recipe import RecipeError, load_recipe_file

from tests.import_probe import heavy_modules_loaded
from tests.launch_helpers import DEMO, demo_copy

FIX = Path(__file__).parent / "fixtures" / "launch"


def _leaves(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _leaves(v)
    else:
        yield obj


def _recipe(tmp_path: Path, stage: int = 3, **kw: str):
    return load_recipe_file(demo_copy(tmp_path, stage, **kw))


def _ctx(tmp_path: Path, port: int = 29611, devices: list[int] | None = None) -> RenderContext:
    return RenderContext(7, tmp_path / "run", tmp_path, port, devices or [0, 1], sys.executable)


@pytest.mark.parametrize("stage", [0, 2, 3])
def test_ds_config_has_numbers_and_the_recipe_stage(stage: int) -> None:
    recipe = load_recipe_file(DEMO / f"demo-cpu-zero{stage}.toml")
    cfg = render_ds_config(recipe)
    assert "auto" not in list(_leaves(cfg))
    assert cfg["zero_optimization"]["stage"] == stage
    assert cfg["train_micro_batch_size_per_gpu"] == recipe.train.micro_batch
    assert cfg["gradient_accumulation_steps"] == recipe.train.grad_accum
    # A fixed train_batch_size breaks when the Trainer misdetects the world size (transformers 5 on CPU).
    assert "train_batch_size" not in cfg
    assert cfg["fp16"]["enabled"] is False and cfg["bf16"]["enabled"] is False


def test_ds_config_keeps_llamafactory_shape_for_zero3() -> None:
    lf = json.loads((FIX / "lf_ds_z3_config.json").read_text())
    cfg = render_ds_config(load_recipe_file(DEMO / "demo-cpu-zero3.toml"))
    assert set(lf["zero_optimization"]) <= set(cfg["zero_optimization"])
    assert set(lf) - {"train_batch_size"} <= set(cfg)
    hidden = 64  # zerodeck-tiny
    assert cfg["zero_optimization"]["reduce_bucket_size"] == hidden * hidden
    assert cfg["zero_optimization"]["stage3_param_persistence_threshold"] == 10 * hidden


def test_ds_config_offload_and_precision(tmp_path: Path) -> None:
    r = _recipe(tmp_path, 3, offload='"all"', precision='"bf16"')
    cfg = render_ds_config(r)
    assert cfg["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
    assert cfg["zero_optimization"]["offload_param"]["device"] == "cpu"
    assert cfg["bf16"]["enabled"] is True and cfg["fp16"]["enabled"] is False
    r2 = _recipe(tmp_path / "b", 2, offload='"optimizer"')
    z = render_ds_config(r2)["zero_optimization"]
    assert z["offload_optimizer"]["device"] == "cpu" and "offload_param" not in z


def test_deepspeed_validates_rendered_config_and_rejects_a_bad_batch(tmp_path: Path) -> None:
    from zerodeck.core.launch.ds_validate import validate_ds_config

    good = tmp_path / "good.json"
    good.write_text(json.dumps(render_ds_config(_recipe(tmp_path, 3, offload='"all"'))))
    assert validate_ds_config(good, 2) is None
    bad_cfg = render_ds_config(_recipe(tmp_path, 3))
    bad_cfg["train_batch_size"] = 4  # 4 != 4 * 1 * 2
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(bad_cfg))
    msg = validate_ds_config(bad, 2)
    assert msg is not None and "4 != 4 * 1 * 2" in msg
    assert "deepspeed" not in sys.modules  # validation ran in a child process


def test_builtin_renders_torchrun_of_the_trainer(tmp_path: Path) -> None:
    recipe = _recipe(tmp_path)
    launch = render(recipe, _ctx(tmp_path))
    assert launch.argv[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert launch.argv[launch.argv.index("--master_port") + 1] == "29611"
    assert launch.argv[launch.argv.index("--nproc_per_node") + 1] == "2"
    assert "zerodeck.core.launch.trainer" in launch.argv
    job = json.loads(launch.files["job.json"])
    assert (job["hidden"], job["layers"], job["heads"], job["intermediate"], job["vocab"]) == (64, 2, 4, 256, 512)
    assert Path(job["data_path"]) == tmp_path / "data" / "demo-alpaca.jsonl"
    assert job["max_steps"] == 20 and job["dist_backend"] == "gloo"
    assert launch.env["ZERODECK_RUN_ID"] == "7" and launch.env["DS_ACCELERATOR"] == "cpu"
    assert launch.env["MASTER_PORT"] == "29611"


def test_deepspeed_and_torchrun_argv(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("print('hi')\n")
    extra = ('[launch]\nbackend = "deepspeed"\nscript = "train.py"\n'
             'args = ["--deepspeed", "{ds_config}", "--out", "{output_dir}"]\n')
    text = demo_copy(tmp_path, 3).read_text().replace('[launch]\nbackend = "builtin"', extra)
    text = text.replace('device = "cpu"', 'device = "cuda"')
    p = tmp_path / "ds.toml"
    p.write_text(text)
    ctx = _ctx(tmp_path, devices=[2, 3])
    launch = render(load_recipe_file(p), ctx)
    assert launch.argv[:5] == ["deepspeed", "--num_gpus", "2", "--master_port", "29611"]
    assert launch.argv[5] == str(tmp_path / "train.py")
    assert launch.argv[6:8] == ["--deepspeed", str(ctx.run_dir / "ds_config.json")]
    assert launch.env["CUDA_VISIBLE_DEVICES"] == "2,3"
    assert "ds_config.json" in launch.files

    p.write_text(text.replace('backend = "deepspeed"', 'backend = "torchrun"'))
    launch = render(load_recipe_file(p), ctx)
    assert launch.argv[0] == "torchrun" and "--nproc_per_node" in launch.argv
    assert launch.argv[launch.argv.index("--master_port") + 1] == "29611"


def test_deepspeed_include_for_explicit_devices(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("")
    text = demo_copy(tmp_path, 3).read_text()
    text = text.replace('[launch]\nbackend = "builtin"', '[launch]\nbackend = "deepspeed"\nscript = "train.py"')
    text = text.replace('device = "cpu"', 'device = "npu"\ndevices = [4, 5]')
    p = tmp_path / "ds.toml"
    p.write_text(text)
    launch = render(load_recipe_file(p), _ctx(tmp_path, devices=[4, 5]))
    assert launch.argv[1:3] == ["--include", "localhost:4,5"]
    assert "ASCEND_RT_VISIBLE_DEVICES" not in launch.env  # --include sets it; a second mask would renumber


def test_command_placeholders_and_unknown_placeholder(tmp_path: Path) -> None:
    text = demo_copy(tmp_path, 3).read_text().replace(
        '[launch]\nbackend = "builtin"',
        '[launch]\nbackend = "command"\nargv = ["echo", "{ds_config}", "{run_dir}", "port={master_port}"]')
    p = tmp_path / "cmd.toml"
    p.write_text(text)
    ctx = _ctx(tmp_path)
    launch = render(load_recipe_file(p), ctx)
    assert launch.argv == ["echo", str(ctx.run_dir / "ds_config.json"), str(ctx.run_dir), "port=29611"]
    good = load_recipe_file(p)
    p.write_text(text.replace("{run_dir}", "{nope}"))
    # validation now refuses it (tests/test_recipe_safety.py); the renderer still refuses it on its own
    with pytest.raises(RecipeError, match=r"launch.argv\[2\]: unknown placeholder '\{nope\}'"):
        load_recipe_file(p)
    bad = good.model_copy(update={"launch": good.launch.model_copy(update={"argv": ["echo", "{nope}"]})})
    with pytest.raises(RenderError, match=r"launch.argv\[1\]: unknown placeholder '\{nope\}'"):
        render(bad, ctx)


def test_builtin_refuses_unknown_options(tmp_path: Path) -> None:
    p = tmp_path / "opt.toml"
    p.write_text(demo_copy(tmp_path, 3).read_text() + "options = { rlimt_as_extra_mb = 5 }\n")
    with pytest.raises(RenderError, match="rlimt_as_extra_mb"):
        render(load_recipe_file(p), _ctx(tmp_path))


def test_unknown_backend_module_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from zerodeck.core.launch import backends

    monkeypatch.setitem(backends.BACKENDS, "builtin", "zerodeck.core.launch.no_such_backend")
    with pytest.raises(RenderError, match="not available"):
        backends.renderer("builtin")


def test_env_masks_secrets(tmp_path: Path) -> None:
    masked = mask_env({"HF_TOKEN": "abc", "WANDB_API_KEY": "k", "DB_PASSWORD": "p", "MY_SECRET": "s", "PATH": "/bin"})
    assert masked == {"DB_PASSWORD": "***", "HF_TOKEN": "***", "MY_SECRET": "***", "PATH": "/bin",
                      "WANDB_API_KEY": "***"}
    env = job_env(_recipe(tmp_path), _ctx(tmp_path))
    assert env["ZERODECK_RUN_ID"] == "7" and "TORCH_EXTENSIONS_DIR" in env
    assert env["ZERODECK_RUN_TAG"] == str(tmp_path / "run")


def test_pick_port_skips_taken_and_bound_ports() -> None:
    import random

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        bound = s.getsockname()[1]
        assert not port_is_free(bound)
    taken = set(range(29500, 29990))
    port = pick_port(taken, random.Random(1))
    assert 29990 <= port <= 29999


def test_versions_come_from_metadata_without_importing_torch() -> None:
    import subprocess

    code = ("import sys, json; from zerodeck.core.launch.environment import versions; v = versions(); "
            "print(json.dumps([v, 'torch' in sys.modules, 'deepspeed' in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    v, torch_loaded, ds_loaded = json.loads(out)
    assert v["torch"] and v["deepspeed"] and v["python"]
    assert not torch_loaded and not ds_loaded


def test_cli_supervisor_and_renderers_never_import_torch() -> None:
    code = (
        "import zerodeck.core.launch.supervisor, zerodeck.core.launch.api, zerodeck.core.launch.queue\n"
        "import zerodeck.core.launch.reconcile, zerodeck.core.launch.builtin_render\n"
        "import zerodeck.core.launch.script_backends, zerodeck.core.launch.ds_validate\n"
        "from zerodeck.core.cli import main\n"
        "main(['runs', '--json']); main(['queue', '--json'])\n"
    )
    assert heavy_modules_loaded(code) == []
