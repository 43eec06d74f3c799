"""The sbatch script and the per-node script of a Slurm run, rendered from the backend's launch.

The backend renders the job as for one server (its argv, environment and files); `wrap` turns that
into a batch job of `cluster.nodes` nodes: `slurm.sbatch` (the #SBATCH header and one `srun` with
one task per node) and `node.sh`, which every node runs. `node.sh` takes its node rank from the
step (SLURM_NODEID), the rendezvous address from the first node of SLURM_JOB_NODELIST
(`scontrol show hostnames`), turns the GRES Slurm gave it (SLURM_STEP_GPUS / SLURM_JOB_GPUS) into
ASCEND_RT_VISIBLE_DEVICES or CUDA_VISIBLE_DEVICES (Slurm sets no Ascend variable), names the
cluster network for HCCL / NCCL / gloo, starts zerodeck's telemetry sampler, and runs the backend
with the node's rank:

- builtin / torchrun: `torch.distributed.run --nnodes N --node_rank R --master_addr A --master_port P`;
- deepspeed: the same torchrun rendezvous (DeepSpeed's own multi-node launcher needs ssh and a
  hostfile, and users fall back to srun + torchrun);
- llamafactory: `FORCE_TORCHRUN=1 NNODES NODE_RANK MASTER_ADDR MASTER_PORT llamafactory-cli train`;
- swift, command: the same variables (ms-swift reads them; a command reads what it wants).

Both scripts stay in the run directory: they are the record of what ran. The local job the
supervisor starts is `python -m zerodeck.core.launch.slurm.follow`, which submits and follows.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import replace
from pathlib import Path

from zerodeck.core.errors import BadInput
from zerodeck.core.launch.context import Launch, RenderContext
from zerodeck.core.recipe.model import Recipe

SBATCH_FILE = "slurm.sbatch"
NODE_FILE = "node.sh"
TELEMETRY_DIR = "telemetry"
# Variables the login node's placement set that mean nothing on a compute node: node.sh sets them.
NODE_SET = ("CUDA_VISIBLE_DEVICES", "ASCEND_RT_VISIBLE_DEVICES", "MASTER_ADDR", "MASTER_PORT", "HCCL_IF_BASE_PORT",
            "ZERODECK_VISIBLE_CARDS", "ZERODECK_RUN_TAG")
# A port for the rendezvous from the job id: every node computes the same one without talking, and
# two jobs sharing a first node differ unless their ids are 20000 apart.
PORT_BASE = 20000
PORT_SPAN = 20000
TORCHRUN_MODULES = ("torch.distributed.run",)


class Var(str):
    """A word of the node command that is a shell variable, expanded on the node."""


def default_gres(recipe: Recipe) -> str | None:
    """`gpu:<cards>` for NPU and GPU recipes (Slurm declares Ascend NPUs as `gpu` GRES), none on CPU."""
    if recipe.cluster.gres:
        return recipe.cluster.gres
    return None if recipe.hardware.device == "cpu" else f"gpu:{recipe.hardware.cards}"


def node_tag(ctx: RenderContext) -> str:
    return f"{ctx.run_dir}@slurm"


def sbatch_lines(recipe: Recipe, ctx: RenderContext) -> list[str]:
    c = recipe.cluster
    name = re.sub(r"[^A-Za-z0-9._+-]", "_", f"zd{ctx.run_id}-{recipe.name}")[:64]
    lines = [f"--job-name={name}", f"--nodes={c.nodes}", "--ntasks-per-node=1",
             f"--output={ctx.run_dir}/slurm-%j.out", f"--chdir={ctx.run_dir}",
             # The job's processes carry a tag of their own: the supervisor's sweep of the run's local
             # processes never reaches into a job step when the login node is also a compute node.
             f"--export=ALL,ZERODECK_RUN_TAG={node_tag(ctx)}"]
    gres = default_gres(recipe)
    if gres:
        lines.append(f"--gres={gres}")
    for key in ("partition", "time", "account", "qos"):
        value = getattr(c, key)
        if value:
            lines.append(f"--{key}={value}")
    lines.extend(c.extra)
    return lines


def node_command(recipe: Recipe, launch: Launch, ctx: RenderContext) -> tuple[list[str], dict[str, str]]:
    """The argv every node runs (with `Var` words) and the variables the backend needs beyond node.sh's."""
    argv = list(launch.argv)
    nodes, cards = str(recipe.cluster.nodes), str(recipe.hardware.cards)
    backend = launch.backend
    if backend in ("builtin", "torchrun"):
        return _torchrun_multinode(argv, nodes), {}
    if backend == "deepspeed":
        # deepspeed [--num_gpus C | --include localhost:...] --master_port P SCRIPT ARGS
        rest = argv[1:]
        out: list[str] = []
        i = 0
        while i < len(rest):
            if rest[i] in ("--num_gpus", "--include", "--master_port", "--num_nodes", "--hostfile"):
                i += 2
                continue
            out = rest[i:]
            break
        if not out:
            raise BadInput("launch.script: the deepspeed backend rendered no script to run")
        return [ctx.python, "-m", "torch.distributed.run", "--nnodes", nodes, "--node_rank", Var("NODE_RANK"),
                "--nproc_per_node", cards, "--master_addr", Var("MASTER_ADDR"), "--master_port",
                Var("MASTER_PORT"), *out], {}
    if backend == "llamafactory":
        return argv, {"FORCE_TORCHRUN": "1", "NPROC_PER_NODE": cards}
    return argv, {"NPROC_PER_NODE": cards}


def _torchrun_multinode(argv: list[str], nodes: str) -> list[str]:
    out: list[str] = []
    i = 0
    # Each option and its value → what the node runs instead (a single node's --node_rank goes).
    replaced: dict[str, list[str]] = {
        "--nnodes": ["--nnodes", nodes, "--node_rank", Var("NODE_RANK")],
        "--master_addr": ["--master_addr", Var("MASTER_ADDR")],
        "--master_port": ["--master_port", Var("MASTER_PORT")], "--node_rank": []}
    while i < len(argv):
        word = argv[i]
        if word in replaced and i + 1 < len(argv):
            out += replaced[word]
            i += 2
            continue
        out.append(word)
        i += 1
    return out


def quote(word: str) -> str:
    return f'"${{{word}}}"' if isinstance(word, Var) else shlex.quote(word)


def node_script(recipe: Recipe, launch: Launch, ctx: RenderContext) -> str:
    argv, env = node_command(recipe, launch, ctx)
    nodes = recipe.cluster.nodes
    device = recipe.hardware.device
    iface = recipe.cluster.network_interface
    cwd = str(launch.cwd) if launch.cwd else str(ctx.run_dir)
    lines = [
        "#!/bin/bash",
        f"# zerodeck run {ctx.run_id} ({recipe.name}): one node of {nodes}, run by srun from {SBATCH_FILE}.",
        "set -u",
        'NODE_RANK="${SLURM_NODEID:-${SLURM_PROCID:-0}}"',
        'NODE_NAME="${SLURMD_NODENAME:-$(hostname -s)}"',
        'MASTER_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"',
        f'MASTER_PORT="$(( {PORT_BASE} + ${{SLURM_JOB_ID:-0}} % {PORT_SPAN} ))"',
        f"NNODES={nodes}",
        "export NODE_RANK NNODES MASTER_ADDR MASTER_PORT",
        f"export ZERODECK_RUN_TAG={shlex.quote(node_tag(ctx))}",
        'GPUS="${SLURM_STEP_GPUS:-${SLURM_JOB_GPUS:-}}"',
    ]
    if device == "npu":
        lines.append('if [ -n "$GPUS" ]; then export ASCEND_RT_VISIBLE_DEVICES="$GPUS"; fi')
    elif device == "cuda":
        # Slurm sets CUDA_VISIBLE_DEVICES itself (renumbered when it constrains devices); keep it.
        lines.append('if [ -n "$GPUS" ]; then export CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES:-$GPUS}"; fi')
    lines.append('export ZERODECK_VISIBLE_CARDS="$GPUS"')
    if iface:
        q = shlex.quote(iface)
        lines.append(f"export HCCL_SOCKET_IFNAME={q} NCCL_SOCKET_IFNAME={q} GLOO_SOCKET_IFNAME={q}")
    # The backend's environment reaches the nodes through sbatch (--export=ALL: the follower's, which
    # is the launch spec's), so no secret is written into a script; only the node's own variables are.
    for key in sorted(env):
        lines.append(f"export {key}={shlex.quote(env[key])}")
    tdir = ctx.run_dir / TELEMETRY_DIR
    lines += [
        f"mkdir -p {shlex.quote(str(tdir))}",
        f"cd {shlex.quote(cwd)} || exit 1",
        f"{shlex.quote(ctx.python)} -m zerodeck.core.launch.slurm.sampler --out "
        f'{shlex.quote(str(tdir))}/"$NODE_NAME".jsonl --node "$NODE_NAME" --device {shlex.quote(device)} '
        '--root $$ --cards "$GPUS" &',
        "SAMPLER=$!",
        'echo "zerodeck: node $NODE_RANK of $NNODES on $NODE_NAME"'
        ' "(rendezvous $MASTER_ADDR:$MASTER_PORT, cards ${GPUS:-none})"',
        # In the background with `wait`, so a TERM from Slurm (scancel, time limit) runs the trap at
        # once and reaches the backend: a child orphaned by its shell would escape proctrack/linuxproc.
        'trap \'trap - TERM INT; kill -TERM "$JOB" "$SAMPLER" 2>/dev/null\' TERM INT',
        " ".join(quote(w) for w in argv) + " &",
        "JOB=$!",
        'wait "$JOB"',
        "rc=$?",
        'if kill -0 "$JOB" 2>/dev/null; then wait "$JOB"; rc=$?; fi',
        'kill "$SAMPLER" 2>/dev/null; wait "$SAMPLER" 2>/dev/null',
        "exit $rc",
    ]
    return "\n".join(lines) + "\n"


def sbatch_script(recipe: Recipe, ctx: RenderContext) -> str:
    nodes = recipe.cluster.nodes
    lines = ["#!/bin/bash", *(f"#SBATCH {line}" for line in sbatch_lines(recipe, ctx)),
             f"# zerodeck run {ctx.run_id} ({recipe.name}): {nodes} node(s) x {recipe.hardware.cards} card(s).",
             # One task per node; a node whose step fails ends the others (no rank waits forever).
             f"srun --nodes={nodes} --ntasks={nodes} --ntasks-per-node=1 --kill-on-bad-exit=1 "
             f"--output={shlex.quote(str(ctx.run_dir))}/node-%t.log bash {shlex.quote(str(ctx.run_dir / NODE_FILE))}"]
    return "\n".join(lines) + "\n"


def wrap(recipe: Recipe, launch: Launch, ctx: RenderContext, *, cache: Path) -> Launch:
    """The Slurm launch of `launch`: its files plus the two scripts, run by the local follower."""
    files = {**launch.files, SBATCH_FILE: sbatch_script(recipe, ctx), NODE_FILE: node_script(recipe, launch, ctx)}
    env = {k: v for k, v in launch.env.items() if k not in NODE_SET or k == "ZERODECK_RUN_TAG"}
    argv = [ctx.python, "-m", "zerodeck.core.launch.slurm.follow", "--run-dir", str(ctx.run_dir),
            "--run-id", str(ctx.run_id), "--cache", str(cache), "--nodes", str(recipe.cluster.nodes),
            "--cards", str(recipe.hardware.cards), "--device", recipe.hardware.device]
    return replace(launch, argv=argv, env=env, files=files, cwd=ctx.run_dir,
                   ranks=recipe.cluster.nodes * recipe.hardware.cards)
