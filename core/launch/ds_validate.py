"""Check a rendered DeepSpeed config with DeepSpeed's own config classes, in a child process.

The CLI never imports deepspeed (it is slow and pulls in torch), so `validate_ds_config` runs
`python -m zerodeck.core.launch.ds_validate FILE WORLD` with the job's interpreter and returns the
one-line complaint, if any. The module body imports deepspeed only under `__main__`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def validate_ds_config(path: Path, world_size: int, python: str | None = None, timeout: float = 120) -> str | None:
    """None when DeepSpeed accepts the config for `world_size` ranks, else its message."""
    cmd = [python or sys.executable, "-m", "zerodeck.core.launch.ds_validate", str(path), str(world_size)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"could not validate the DeepSpeed config: {exc}"
    if proc.returncode == 0:
        return None
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    return lines[-1] if lines else f"DeepSpeed config check exited {proc.returncode}"


def _check(path: str, world_size: int) -> None:
    # Runs in a child process: DeepSpeed (seconds to import, and DS_ACCELERATOR first) never loads in the CLI.
    import os

    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import logging

    logging.disable(logging.WARNING)
    from deepspeed.runtime import config as ds_config_mod
    from deepspeed.runtime.config import DeepSpeedConfig
    from deepspeed.runtime.zero.config import DeepSpeedZeroConfig
    from pydantic import ValidationError

    config = json.loads(Path(path).read_text())
    if any(v == "auto" for v in _leaves(config)):
        raise SystemExit("DeepSpeed config still holds 'auto' values")
    try:
        DeepSpeedZeroConfig(**config.get("zero_optimization", {}))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise SystemExit(f"DeepSpeed rejects zero_optimization.{where}: {first['msg']}") from None
    # Without torch.distributed up, DeepSpeedConfig falls back to world size 1 unless it can ask
    # for a rank; answer as rank 0 so the batch check uses the run's real world size.
    ds_config_mod.dist.get_rank = lambda *a, **k: 0

    class _Mpu:  # DeepSpeedConfig asks an mpu for the world size when torch.distributed is down
        def get_data_parallel_world_size(self) -> int:
            return world_size

        def get_sequence_parallel_world_size(self) -> int:
            return 1

        def get_sequence_data_parallel_world_size(self) -> int:
            return world_size

    try:
        DeepSpeedConfig(config, mpu=_Mpu())
    except (AssertionError, ValueError, TypeError) as exc:
        raise SystemExit(f"DeepSpeed rejects the config: {exc}") from None


def _leaves(obj: object) -> list[object]:
    if isinstance(obj, dict):
        return [x for v in obj.values() for x in _leaves(v)]
    if isinstance(obj, list):
        return [x for v in obj for x in _leaves(v)]
    return [obj]


if __name__ == "__main__":
    _check(sys.argv[1], int(sys.argv[2]))
