"""Which checkpoint a run can be resumed from: the newest one whose files are all there.

A run killed while saving leaves a `checkpoint-N` directory that exists but cannot be loaded, and
resuming from it fails again hours into the next run. So a checkpoint counts only when complete:
- the built-in trainer's: its `trainer_state.json` lists every file it wrote (`zerodeck_files`), and
  each must exist (it also renames the directory into place only once written);
- HF Trainer's (LLaMA-Factory, ms-swift): `trainer_state.json`, the model weights (full, sharded
  index, or a LoRA adapter) and the optimizer state (`optimizer.pt`, or DeepSpeed's
  `global_step*/…optim_states.pt` shards).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
STATE_FILE = "trainer_state.json"
WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
           "pytorch_model.bin.index.json", "adapter_model.safetensors", "adapter_model.bin")
OPTIMIZER = ("optimizer.pt", "optimizer.bin", "optimizer.safetensors")


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    step: int


def is_complete(path: Path) -> bool:
    state_file = path / STATE_FILE
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(state, dict):
        return False
    listed = state.get("zerodeck_files")
    if isinstance(listed, list):
        return bool(listed) and all(isinstance(f, str) and (path / f).is_file() for f in listed)
    optimizer = any((path / name).is_file() for name in OPTIMIZER) or any(path.glob("global_step*/*optim_states.pt"))
    return optimizer and has_weights(path)


def has_weights(path: Path) -> bool:
    """Whether `path` holds a saved model whole: weights (full, sharded, a LoRA adapter, or DeepSpeed's
    `global_step*` model states) with every shard its index names."""
    weights = any((path / name).is_file() for name in WEIGHTS) or any(path.glob("global_step*/*model_states.pt"))
    return weights and _shards_present(path)


def _shards_present(path: Path) -> bool:
    """A sharded save names its shards in the index; one missing means an interrupted save."""
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        try:
            data = json.loads((path / index).read_text())
        except OSError:
            continue
        except ValueError:
            return False
        shards = set((data.get("weight_map") or {}).values()) if isinstance(data, dict) else set()
        if not all((path / s).is_file() for s in shards):
            return False
    return True


def newest_complete(output_dir: Path) -> Checkpoint | None:
    """The highest-step complete `checkpoint-N` directly under output_dir, if any."""
    try:
        entries = list(output_dir.iterdir())
    except OSError:
        return None
    found = []
    for entry in entries:
        m = CHECKPOINT_RE.match(entry.name)
        if m and entry.is_dir():
            found.append(Checkpoint(entry, int(m.group(1))))
    for ckpt in sorted(found, key=lambda c: c.step, reverse=True):
        if is_complete(ckpt.path):
            return ckpt
    return None


def checkpoint_step(path: Path) -> int | None:
    m = CHECKPOINT_RE.match(path.name)
    return int(m.group(1)) if m else None
