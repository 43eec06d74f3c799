"""zerodeck's own small trainer: one rank of a tiny causal LM trained with DeepSpeed.

This is the only module allowed to import torch and deepspeed; it runs inside the rank processes
that torchrun starts, never in the CLI, the TUI or the supervisor. It reads the job file that
`builtin_render` wrote, trains with the recipe's ZeRO stage on CPU (gloo), CUDA or NPU, and prints
one JSON line per step from rank 0 (the metrics parser reads exactly these keys):

    {"zerodeck": "step", "step": 3, "total_steps": 20, "loss": 5.91, "lr": 0.001, ...}
    {"zerodeck": "done", "steps": 20, "train_runtime": 7.1, "train_loss": 4.2, ...}
"""

from __future__ import annotations

import json
import math
import os
import resource
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

# Byte-level tokens 0..255, then the specials; the rest of the 512-entry vocabulary is unused.
BOS, EOS = 256, 257


def _texts(path: Path, fmt: str) -> list[str]:
    out: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if fmt == "text":
            out.append(str(row.get("text", "")))
        elif fmt == "sharegpt":
            out.append("\n".join(str(m.get("value", m.get("content", ""))) for m in row.get("conversations", [])))
        else:
            prompt = "\n".join(str(row.get(k) or "") for k in ("instruction", "input") if row.get(k))
            out.append(f"{prompt}\n{row.get('output', '')}")
    return out


def _token_stream(texts: list[str]) -> list[int]:
    ids: list[int] = []
    for t in texts:
        ids.append(BOS)
        ids.extend(t.encode("utf-8"))
        ids.append(EOS)
    return ids


def _peak_mem_mb(torch: Any, device: str) -> float:
    if device == "cuda":
        return float(torch.cuda.max_memory_allocated()) / 2**20
    if device == "npu":
        return float(torch.npu.max_memory_allocated()) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _limit_address_space(extra_mb: int) -> None:
    """Cap this rank's address space `extra_mb` above what it maps now (simulates an OOM)."""
    with open("/proc/self/status") as fh:
        vm_kb = next(int(ln.split()[1]) for ln in fh if ln.startswith("VmSize:"))
    limit = (vm_kb * 1024) + extra_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as fh:
        return next(int(ln.split()[1]) for ln in fh if ln.startswith(key + ":"))


def _limit_to_card(card_mb: float) -> None:
    """Hold this rank to its recipe's card: a CPU "card" is the rank's resident memory, and
    `hardware.card_gb` is what the planner's verdict was made against (core/capacity.py). The
    address space may grow by what the card has left over the rank's resident size now, so an
    allocation past the card fails in torch's allocator as it would on a device ("DefaultCPUAllocator:
    not enough memory"), and the run is recorded oom / cpu. No cgroup needed."""
    rss_mb = _status_kb("VmRSS") / 1024.0
    left_mb = card_mb - rss_mb
    if left_mb <= 0:
        sys.stderr.write(f"RuntimeError: [enforce fail at alloc_cpu.cpp] DefaultCPUAllocator: not enough memory: "
                         f"the rank holds {rss_mb:.0f} MiB before training, the card has {card_mb:.0f} MiB\n")
        sys.stderr.flush()
        os._exit(1)
    limit = _status_kb("VmSize") * 1024 + int(left_mb * 2**20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _build_model(torch: Any, cfg: dict[str, Any]) -> Any:
    nn: Any = torch.nn
    f: Any = torch.nn.functional
    hidden, heads, inter, vocab = cfg["hidden"], cfg["heads"], cfg["intermediate"], cfg["vocab"]

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm1 = nn.LayerNorm(hidden)
            self.qkv = nn.Linear(hidden, 3 * hidden, bias=False)
            self.proj = nn.Linear(hidden, hidden, bias=False)
            self.norm2 = nn.LayerNorm(hidden)
            self.up = nn.Linear(hidden, inter, bias=False)
            self.down = nn.Linear(inter, hidden, bias=False)

        def forward(self, x: Any) -> Any:
            b, s, h = x.shape
            q, k, v = self.qkv(self.norm1(x)).split(h, dim=-1)
            q, k, v = (t.view(b, s, heads, h // heads).transpose(1, 2) for t in (q, k, v))
            a = f.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(a.transpose(1, 2).reshape(b, s, h))
            return x + self.down(f.gelu(self.up(self.norm2(x))))

    class TinyLM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(vocab, hidden)
            self.pos = nn.Embedding(cfg["seq_len"], hidden)
            self.blocks = nn.ModuleList(Block() for _ in range(cfg["layers"]))
            self.norm = nn.LayerNorm(hidden)
            # Untied head: under ZeRO-3 a weight shared across modules is fetched only by its owner.
            self.head = nn.Linear(hidden, vocab, bias=False)

        def forward(self, ids: Any) -> Any:
            pos = torch.arange(ids.shape[1], device=ids.device)
            x = self.embed(ids) + self.pos(pos)
            for blk in self.blocks:
                x = blk(x)
            logits = self.head(self.norm(x))
            return f.cross_entropy(logits[:, :-1].reshape(-1, vocab).float(), ids[:, 1:].reshape(-1))

    return TinyLM()


def _build_hf_model(torch: Any, cfg: dict[str, Any]) -> Any:
    """A transformers causal LM from a local config.json, randomly initialised (no weights to
    download), returning its own loss: HF's ForCausalLMLoss, checkpointing and attention as the
    recipe says, so a GPU check measures the code path the planner models."""
    from transformers import AutoConfig, AutoModelForCausalLM

    attn = {"flash": "flash_attention_2"}.get(cfg.get("attn") or "sdpa", cfg.get("attn") or "sdpa")
    conf = AutoConfig.from_pretrained(cfg["hf_config"])
    conf.use_cache = False
    lm = AutoModelForCausalLM.from_config(conf, attn_implementation=attn)
    if cfg.get("grad_ckpt"):
        lm.gradient_checkpointing_enable()

    class WithLoss(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lm = lm

        def forward(self, ids: Any) -> Any:
            return self.lm(input_ids=ids, labels=ids).loss

    return WithLoss()


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


CKPT_TAG = "ds"  # DeepSpeed's tag directory inside a checkpoint
STATE_FILE = "trainer_state.json"


def _save_checkpoint(torch: Any, engine: Any, out_dir: Path, step: int, rank: int, loss: float) -> None:
    """`checkpoint-STEP`, written whole into a hidden directory and renamed into place by rank 0, so a
    crash mid-save never leaves a directory that looks complete. trainer_state.json lists every file
    (the completeness check in core/launch/checkpoints.py reads it)."""
    tmp = out_dir / f".checkpoint-{step}.partial"
    final = out_dir / f"checkpoint-{step}"
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    torch.distributed.barrier()
    engine.save_checkpoint(str(tmp), tag=CKPT_TAG)  # every rank writes its own shards
    torch.distributed.barrier()
    if rank == 0:
        files = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())
        state = {"global_step": step, "loss": loss, "zerodeck_files": files}
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    torch.distributed.barrier()


def _load_checkpoint(engine: Any, path: Path) -> int:
    """Load a checkpoint written by `_save_checkpoint` into the engine; returns its step."""
    state = json.loads((path / STATE_FILE).read_text())
    engine.load_checkpoint(str(path), tag=CKPT_TAG)
    return int(state["global_step"])


def _test_hooks() -> dict[str, int]:
    """Faults the tests inject through the job's environment (a rank is its own process entry):
    ZERODECK_TEST_SLEEP_AT_STEP / ZERODECK_TEST_SLEEP_S make rank 0 hang before that step,
    ZERODECK_TEST_KILL_AT_STEP SIGKILLs it after that step (and its checkpoint), and
    ZERODECK_TEST_COMM_ERROR_AT_STEP makes it die there of a lost gloo peer."""
    names = {"sleep_at_step": "ZERODECK_TEST_SLEEP_AT_STEP", "sleep_s": "ZERODECK_TEST_SLEEP_S",
             "kill_at_step": "ZERODECK_TEST_KILL_AT_STEP", "comm_error_at_step": "ZERODECK_TEST_COMM_ERROR_AT_STEP"}
    out: dict[str, int] = {}
    for key, var in names.items():
        value = os.environ.get(var, "")
        if value.isdigit():
            out[key] = int(value)
    return out


def train(cfg: dict[str, Any]) -> None:
    device = cfg["device"]
    if device == "cpu":
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    # Here, not at the top: only a rank process trains; torch and DeepSpeed cost seconds and GBs to import,
    # and DS_ACCELERATOR must be set before DeepSpeed is imported.
    import warnings

    import torch

    # The c10d deprecation notes repeat once per rank per collective and bury the real log.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.distributed")
    if device == "npu":
        import torch_npu  # noqa: F401  (registers the npu device)
    import deepspeed

    deepspeed.init_distributed(dist_backend=cfg.get("dist_backend"))
    rank = torch.distributed.get_rank()
    world = torch.distributed.get_world_size()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device("cpu")
    if device == "cuda":
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    elif device == "npu":
        torch.npu.set_device(local_rank)  # type: ignore[attr-defined]
        dev = torch.device("npu", local_rank)

    torch.manual_seed(cfg["seed"])
    ds_cfg = json.loads(Path(cfg["ds_config"]).read_text())
    model = _build_hf_model(torch, cfg) if cfg.get("hf_config") else _build_model(torch, cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg["lr"])
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config=ds_cfg)

    seq, micro, accum = cfg["seq_len"], cfg["micro_batch"], cfg["grad_accum"]
    stream = _token_stream(_texts(Path(cfg["data_path"]), cfg["data_format"]))
    n_seqs = max(1, len(stream) // seq)
    steps_per_epoch = max(1, n_seqs // (micro * accum * world))
    total = cfg["max_steps"] or max(1, math.ceil(cfg["epochs"] * steps_per_epoch))
    dtype_ids = torch.long
    if cfg.get("rlimit_as_extra_mb") is not None and rank in cfg.get("rlimit_ranks", [rank]):
        _limit_address_space(int(cfg["rlimit_as_extra_mb"]))
    elif cfg.get("card_limit_mb") and device == "cpu":
        _limit_to_card(float(cfg["card_limit_mb"]))

    def batch(index: int) -> Any:
        # Packed byte stream, cycled: every sample is exactly seq_len tokens, each rank its own slice.
        start = ((index * world + rank) * micro * seq) % max(1, len(stream) - seq)
        rows = []
        for i in range(micro):
            off = (start + i * seq) % max(1, len(stream) - seq)
            rows.append(stream[off : off + seq])
        return torch.tensor(rows, dtype=dtype_ids, device=dev)

    hooks = _test_hooks()
    first = 1
    if cfg.get("resume_from"):
        first = _load_checkpoint(engine, Path(cfg["resume_from"])) + 1
        if rank == 0:
            _emit({"zerodeck": "resumed", "step": first - 1, "checkpoint": cfg["resume_from"]})
    t0 = time.perf_counter()
    losses: list[float] = []
    samples_per_step = micro * accum * world
    last = t0
    save_steps = cfg.get("save_steps")
    for step in range(first, total + 1):
        if rank == 0 and step == hooks.get("sleep_at_step"):
            time.sleep(hooks.get("sleep_s", 3600))  # a hang: the other ranks wait in the next all_reduce
        step_loss = 0.0
        for micro_i in range(accum):
            loss = engine(batch((step - 1) * accum + micro_i))
            engine.backward(loss)
            engine.step()
            step_loss += float(loss.detach()) / accum
        mean = torch.tensor([step_loss], dtype=torch.float32, device=dev)
        torch.distributed.all_reduce(mean)
        loss_v = float(mean.item()) / world
        losses.append(loss_v)
        now = time.perf_counter()
        dt = max(now - last, 1e-9)
        last = now
        if rank == 0:
            lr = engine.get_lr()[0] if engine.get_lr() else cfg["lr"]
            _emit({"zerodeck": "step", "step": step, "total_steps": total, "loss": round(loss_v, 4),
                   "lr": lr, "samples_per_s": round(samples_per_step / dt, 2),
                   "tokens_per_s": round(samples_per_step * seq / dt, 1),
                   "peak_mem_mb": round(_peak_mem_mb(torch, device), 1), "rank": 0,
                   "t": round(now - t0, 3)})
        if save_steps and step % save_steps == 0:
            _save_checkpoint(torch, engine, Path(cfg["output_dir"]), step, rank, loss_v)
        if rank == 0 and step == hooks.get("kill_at_step"):
            os.kill(os.getpid(), signal.SIGKILL)  # dies hard, after this step's checkpoint
        if rank == 0 and step == hooks.get("comm_error_at_step"):
            sys.stderr.write("RuntimeError: [../third_party/gloo/gloo/transport/tcp/pair.cc:598] "
                             "Connection closed by peer [127.0.0.1]:4242\n")
            sys.stderr.flush()
            os._exit(1)
    runtime = time.perf_counter() - t0
    if rank == 0:
        _emit({"zerodeck": "done", "steps": total, "train_runtime": round(runtime, 3),
               "train_loss": round(sum(losses) / max(1, len(losses)), 4),
               "samples_per_s": round(samples_per_step * len(losses) / runtime, 2),
               "tokens_per_s": round(samples_per_step * len(losses) * seq / runtime, 1)})
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m zerodeck.core.launch.trainer JOB.json\n")
        return 2
    train(json.loads(Path(args[0]).read_text()))
    return 0


if __name__ == "__main__":
    code = main()
    # Training is over and the process group is destroyed: leave without running C++ static
    # destructors. Under load a rank's gloo / shm-comm threads can still be joinable at exit, and
    # their destructors abort ("terminate called without an active exception", SIGABRT), which
    # torchrun would report as a failed run after every step had finished.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
