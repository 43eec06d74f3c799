"""The environment a run starts with, and what is recorded so it can be reproduced.

Every job process carries `ZERODECK_RUN_ID` and `ZERODECK_RUN_TAG` (the run directory): torchrun
and llamafactory-cli start their ranks in sessions of their own, so the tag is how `stop` and the
reconciler find every process of a run.
Versions are read with importlib.metadata, which never imports torch into the CLI.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import socket
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from zerodeck.core.launch.context import RenderContext

if TYPE_CHECKING:  # the supervisor imports this module; building the pydantic models costs it ~10 MiB
    from zerodeck.core.recipe.model import Recipe

RUN_ID_VAR = "ZERODECK_RUN_ID"
# The tag `stop` and the reconciler look for: the run directory, unique across stores (run ids are not).
RUN_TAG = "ZERODECK_RUN_TAG"
# The ledger's card indexes given to the run, for every device (on CPU the only witness of which
# virtual card a rank sits on: rank r sits on the r-th).
VISIBLE_CARDS = "ZERODECK_VISIBLE_CARDS"
SECRET_RE = re.compile(r"TOKEN|KEY|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
MASK = "***"
PACKAGES = ("torch", "torch_npu", "deepspeed", "transformers", "accelerate", "peft", "llamafactory")


def visibility_var(device: str) -> str | None:
    return {"cuda": "CUDA_VISIBLE_DEVICES", "npu": "ASCEND_RT_VISIBLE_DEVICES"}.get(device)


def job_env(recipe: Recipe, ctx: RenderContext) -> dict[str, str]:
    """What every backend adds to the inherited environment."""
    env = {
        RUN_ID_VAR: str(ctx.run_id),
        RUN_TAG: str(ctx.run_dir),
        "ZERODECK_RUN_DIR": str(ctx.run_dir),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(ctx.master_port),
        "PYTHONUNBUFFERED": "1",
    }
    var = visibility_var(recipe.hardware.device)
    if var:
        env[var] = ",".join(str(d) for d in ctx.visible_devices)
    env[VISIBLE_CARDS] = ",".join(str(d) for d in ctx.visible_devices)
    if ctx.hccl_base_port is not None and recipe.hardware.device == "npu":
        env["HCCL_IF_BASE_PORT"] = str(ctx.hccl_base_port)
    if "TORCH_EXTENSIONS_DIR" not in os.environ:
        # DeepSpeed JIT-builds ops (deepspeed_shm_comm on CPU) into one shared cache by default; a
        # build from another environment there breaks or rebuilds this one, so keep one per environment.
        env["TORCH_EXTENSIONS_DIR"] = str(extensions_dir())
    if recipe.hardware.device == "cpu":
        env["DS_ACCELERATOR"] = "cpu"
        # Each rank would otherwise spawn one thread per core and the ranks fight over them.
        env.setdefault("OMP_NUM_THREADS", "1")
    env.update(recipe.launch.env)
    return env


def extensions_dir() -> Path:
    """The op cache for this process's own environment (the builtin and script backends' ranks)."""
    paths = [sys.prefix, *(p for p in (_dist_location("torch"), _dist_location("deepspeed")) if p)]
    return ops_cache_dir(python=f"py{sys.version_info[0]}{sys.version_info[1]}", torch=_version("torch"),
                         deepspeed=_version("deepspeed"), install_paths=paths)


def ops_cache_dir(*, python: str, torch: str | None, deepspeed: str | None, install_paths: Sequence[str | Path],
                  cache_root: Path | None = None) -> Path:
    """Where DeepSpeed JIT-builds its ops (deepspeed_shm_comm on CPU) for one environment.

    The default cache is shared by every environment, and its build.ninja records the include and
    library paths of the interpreter, torch and DeepSpeed that built it: a second environment with
    the same versions sees a changed build.ninja and rebuilds, and the first then rebuilds again.
    So the versions name the directory for people and a short hash of the install paths keeps one
    cache per environment.
    """
    root = cache_root or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    key = hashlib.sha256("\0".join(str(p) for p in install_paths).encode()).hexdigest()[:10]
    tag = f"{python}-torch{torch or 'unknown'}-ds{deepspeed or 'unknown'}-{key}"
    return root / "zerodeck" / "torch_extensions" / tag


def _dist_location(name: str) -> str | None:
    """The site-packages a distribution is installed in, read from its metadata (never imported)."""
    try:
        return str(metadata.distribution(name).locate_file(""))
    except metadata.PackageNotFoundError:
        return None


def mask_env(env: dict[str, str]) -> dict[str, str]:
    """Secrets by name, and a password inside any URL value (ZERODECK_DB=postgresql://user:pw@...)."""
    from zerodeck.store.urls import mask_text

    return {k: (MASK if SECRET_RE.search(k) else mask_text(v)) for k, v in sorted(env.items())}


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version(), "zerodeck": _version("zerodeck")}
    for name in PACKAGES:
        out[name] = _version(name)
    out.update(_ascend_versions())
    out.update(_nvidia_versions())
    return out


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _ascend_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    driver = Path("/usr/local/Ascend/driver/version.info")
    if driver.is_file():
        out["ascend_driver"] = _kv_version(driver.read_text(errors="replace"))
    homes = (Path("/usr/local/Ascend/ascend-toolkit/latest"), Path(os.environ.get("ASCEND_HOME_PATH", "/nonexistent")))
    for cann in homes:
        for info in cann.glob("*/ascend_toolkit_install.info") if cann.is_dir() else []:
            out["cann"] = _kv_version(info.read_text(errors="replace"))
            break
    return out


def _nvidia_versions() -> dict[str, str | None]:
    path = Path("/proc/driver/nvidia/version")
    if not path.is_file():
        return {}
    m = re.search(r"Kernel Module\s+(\S+)", path.read_text(errors="replace"))
    return {"nvidia_driver": m.group(1) if m else None}


def _kv_version(text: str) -> str | None:
    m = re.search(r"^\s*(?:Version|version)\s*=\s*(\S+)", text, re.MULTILINE)
    return m.group(1) if m else None


def host_info() -> dict[str, str]:
    return {"hostname": socket.gethostname(), "platform": platform.platform(), "python_executable": sys.executable}
