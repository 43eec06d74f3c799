"""What a Slurm run renders: the sbatch script and the per-node script of 2 x 8 NPU jobs.

Checked against what LLaMA-Factory and torchrun document for multi-node runs (`FORCE_TORCHRUN=1
NNODES NODE_RANK MASTER_ADDR MASTER_PORT`, `torchrun --nnodes --node_rank --master_addr
--master_port`), what Slurm gives a step (SLURM_NODEID, SLURM_JOB_NODELIST, SLURM_STEP_GPUS /
SLURM_JOB_GPUS) and what Ascend needs (ASCEND_RT_VISIBLE_DEVICES, HCCL_SOCKET_IFNAME,
GLOO_SOCKET_IFNAME). The node script is also run for real by bash, as node 1 of a two-node step,
with stand-ins for `scontrol` and the launcher that record what they were given.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from zerodeck.core.launch.backends import render
from zerodeck.core.launch.context import RenderContext
from zerodeck.core.launch.llamafactory import CLI_ENV, YAML_NAME
from zerodeck.core.launch.slurm.render import NODE_FILE, SBATCH_FILE, wrap
from zerodeck.core.recipe import load_recipe_file
from zerodeck.core.recipe.model import Recipe

from .conftest import ROOT

CLUSTER = {"scheduler": "slurm", "nodes": 2, "partition": "ascend910b", "time": "12:00:00",
           "account": "llm", "qos": "normal", "network_interface": "enp189s0f0", "extra": ["--exclusive"]}


def recipe_72b(**sections: dict) -> Recipe:
    data = load_recipe_file(ROOT / "recipes" / "qwen2.5-72b-lora.toml").model_dump()
    data.pop("grid")
    data["zero"] = {**data["zero"], "stage": 3}
    data["cluster"] = CLUSTER
    for key, values in sections.items():
        data[key] = {**data[key], **values}
    return Recipe.model_validate(data, strict=False)


def ctx_for(tmp_path: Path) -> RenderContext:
    return RenderContext(run_id=7, run_dir=tmp_path / "runs" / "7", recipe_dir=tmp_path, master_port=29517,
                         visible_devices=list(range(8)), python=sys.executable)


@pytest.fixture
def recorder_bin(tmp_path: Path) -> Path:
    """Stand-ins: `scontrol show hostnames` expands two nodes; the launchers write argv and environment."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "scontrol").write_text('#!/bin/sh\n[ "$1 $2" = "show hostnames" ] && printf "npu-a01\\nnpu-a02\\n"\n')
    record = ("#!" + sys.executable + "\nimport json, os, sys\n"
              "json.dump({'argv': sys.argv, 'env': dict(os.environ)}, open(os.environ['RECORD'], 'w'))\n")
    for name in ("llamafactory-cli", "launcher"):
        (bindir / name).write_text(record)
    for f in bindir.iterdir():
        f.chmod(0o755)
    return bindir


def run_node(launch_files: dict[str, str], ctx: RenderContext, bindir: Path, rank: int) -> dict:
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    for name, content in launch_files.items():
        (ctx.run_dir / name).write_text(content)
    record = ctx.run_dir / f"record-{rank}.json"
    env = {"PATH": f"{bindir}:{os.environ['PATH']}", "RECORD": str(record), "SLURM_NODEID": str(rank),
           "SLURM_PROCID": str(rank), "SLURM_JOB_ID": "4242", "SLURM_JOB_NODELIST": "npu-a[01-02]",
           "SLURM_STEP_GPUS": "0,1,2,3,4,5,6,7", "SLURM_JOB_GPUS": "0,1,2,3,4,5,6,7",
           "SLURMD_NODENAME": f"npu-a0{rank + 1}"}
    proc = subprocess.run(["bash", str(ctx.run_dir / NODE_FILE)], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(record.read_text())


def test_two_by_eight_npu_llamafactory(tmp_path: Path, recorder_bin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CLI_ENV, str(recorder_bin / "llamafactory-cli"))
    recipe = recipe_72b()
    ctx = ctx_for(tmp_path)
    launch = wrap(recipe, render(recipe, ctx), ctx, cache=tmp_path / "queue.json")
    sbatch = launch.files[SBATCH_FILE]
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=1", "#SBATCH --gres=gpu:8",
                 "#SBATCH --partition=ascend910b", "#SBATCH --time=12:00:00", "#SBATCH --account=llm",
                 "#SBATCH --qos=normal", "#SBATCH --exclusive"):
        assert line in sbatch.splitlines(), sbatch
    assert "srun --nodes=2 --ntasks=2 --ntasks-per-node=1 --kill-on-bad-exit=1" in sbatch
    assert launch.ranks == 16
    assert launch.argv[1:3] == ["-m", "zerodeck.core.launch.slurm.follow"]
    # The login node's placement means nothing on a compute node.
    assert "CUDA_VISIBLE_DEVICES" not in launch.env and "MASTER_PORT" not in launch.env
    assert "29517" not in launch.files[NODE_FILE]

    got = run_node(launch.files, ctx, recorder_bin, rank=1)
    env = got["env"]
    assert got["argv"][1:] == ["train", YAML_NAME]
    assert (env["FORCE_TORCHRUN"], env["NNODES"], env["NODE_RANK"], env["NPROC_PER_NODE"]) == ("1", "2", "1", "8")
    assert env["MASTER_ADDR"] == "npu-a01" and env["MASTER_PORT"] == str(20000 + 4242 % 20000)
    assert env["ASCEND_RT_VISIBLE_DEVICES"] == "0,1,2,3,4,5,6,7"
    assert env["HCCL_SOCKET_IFNAME"] == env["GLOO_SOCKET_IFNAME"] == "enp189s0f0"
    assert env["ZERODECK_RUN_TAG"].endswith("@slurm")


def test_two_by_eight_npu_deepspeed_becomes_one_torchrun_rendezvous(tmp_path: Path, recorder_bin: Path) -> None:
    (tmp_path / "train.py").write_text("")
    recipe = recipe_72b(launch={"backend": "deepspeed", "script": "train.py",
                                "args": ["--deepspeed", "{ds_config}"]})
    ctx = ctx_for(tmp_path)
    launch = wrap(recipe, render(recipe, ctx), ctx, cache=tmp_path / "queue.json")
    node = launch.files[NODE_FILE]
    assert "-m torch.distributed.run --nnodes 2 --node_rank \"${NODE_RANK}\" --nproc_per_node 8 " \
           "--master_addr \"${MASTER_ADDR}\" --master_port \"${MASTER_PORT}\"" in node
    assert f"{tmp_path / 'train.py'} --deepspeed {ctx.run_dir / 'ds_config.json'}" in node
    assert "deepspeed --num_gpus" not in node  # DeepSpeed's ssh launcher is not used across nodes
    # The launcher replaced by the recorder: node 0 of the same job.
    launch.files[NODE_FILE] = node.replace(f"{sys.executable} -m torch.distributed.run", "launcher", 1) \
        .replace(f"'{sys.executable}' -m torch.distributed.run", "launcher", 1)
    got = run_node(launch.files, ctx, recorder_bin, rank=0)
    argv = got["argv"]
    assert argv[argv.index("--node_rank") + 1] == "0" and argv[argv.index("--master_addr") + 1] == "npu-a01"
    assert got["env"]["ASCEND_RT_VISIBLE_DEVICES"] == "0,1,2,3,4,5,6,7"


def test_cpu_builtin_needs_no_gres_and_cuda_keeps_slurms_mask(tmp_path: Path) -> None:
    recipe = load_recipe_file(ROOT / "recipes" / "demo-cpu-zero3.toml")
    data = recipe.model_dump()
    data["cluster"] = {"scheduler": "slurm", "nodes": 2}
    cpu = Recipe.model_validate(data, strict=False)
    ctx = ctx_for(tmp_path)
    launch = wrap(cpu, render(cpu, ctx), ctx, cache=tmp_path / "q.json")
    assert "--gres" not in launch.files[SBATCH_FILE]
    node = launch.files[NODE_FILE]
    assert "--nnodes 2 --node_rank \"${NODE_RANK}\" --nproc_per_node 2" in node
    data["hardware"] = {**data["hardware"], "device": "cuda", "cards": 4}
    cuda = Recipe.model_validate(data, strict=False)
    node = wrap(cuda, render(cuda, ctx), ctx, cache=tmp_path / "q.json").files[NODE_FILE]
    assert 'CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES:-$GPUS}"' in node
    assert "#SBATCH --gres=gpu:4" in wrap(cuda, render(cuda, ctx), ctx, cache=tmp_path / "q.json").files[SBATCH_FILE]
