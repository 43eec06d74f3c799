"""What every launch backend receives and returns, so the supervisor treats all backends alike.

A backend is a pure function `render(recipe, ctx) -> Launch`: it decides the argv, the extra
environment and the files to write (DeepSpeed JSON, LLaMA-Factory YAML); the supervisor writes the
files, starts the argv in its own process group and watches it. Rendering never starts anything,
so `zerodeck run --dry-run` and the tests can inspect exactly what would run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class RenderContext:
    run_id: int
    run_dir: Path  # the run's own directory: rendered files, log, outputs
    recipe_dir: Path  # relative paths in the recipe resolve against this
    master_port: int  # a free port chosen for this run (never a fixed 29500)
    visible_devices: list[int]  # logical device ids for ASCEND_RT_VISIBLE_DEVICES / CUDA_VISIBLE_DEVICES
    python: str  # the interpreter the job's Python entry points run with
    hccl_base_port: int | None = None  # HCCL_IF_BASE_PORT: the run's own block (Ascend), from the ledger
    resume_from: Path | None = None  # a complete checkpoint the job continues from (`zerodeck resume`)


@dataclass
class Launch:
    backend: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)  # added to the inherited environment
    files: dict[str, str] = field(default_factory=dict)  # file name (in run_dir) -> content
    cwd: Path | None = None
    ranks: int = 1  # how many rank processes the job should start
