"""The telemetry sampler every node of a Slurm run starts beside the job (`node.sh`).

`python -m zerodeck.core.launch.slurm.sampler --out RUN_DIR/telemetry/NODE.jsonl --node NODE
--device DEV --root PID --cards 0,1`: one JSON line per reading of this node's cards (npu-smi,
NVML / nvidia-smi, or the CPU ranks under `--root`) and host memory, appended to a file in the run
directory (shared with the login node), which the follower there reads into the store. It stops
when its root process is gone or on SIGTERM; a failed reading is a line with `error` set, never a
crash. Light on purpose: no store, no torch.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

INTERVAL_S = 1.0


def _tree(root: int) -> list[int]:
    import psutil

    try:
        proc = psutil.Process(root)
        return [proc.pid] + [c.pid for c in proc.children(recursive=True) if c.pid != os.getpid()]
    except psutil.Error:
        return []


def reading(source: Any, cards: set[int] | None, device: str) -> dict[str, Any]:
    snap = source.read(10.0)
    out: dict[str, Any] = {"wall": time.time(), "cards": []}
    if snap.error:
        out["error"] = snap.error
    for card in snap.cards:
        if device != "cpu" and cards is not None and card.logical_id not in cards:
            continue
        out["cards"].append({"card": card.key, "used_mb": card.device_used_mb, "total_mb": card.device_total_mb,
                             "util_pct": card.aicore_pct, "power_w": card.power_w, "temp_c": card.temp_c})
    import psutil

    mem = psutil.virtual_memory()
    out["host_used_mb"] = round((mem.total - mem.available) / 2**20)
    out["host_total_mb"] = round(mem.total / 2**20)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="zerodeck-slurm-sampler")
    ap.add_argument("--out", required=True)
    ap.add_argument("--node", required=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--root", type=int, required=True)
    ap.add_argument("--cards", default="")
    ap.add_argument("--interval", type=float, default=INTERVAL_S)
    args = ap.parse_args(argv)
    from zerodeck.core.telemetry.sources import make_source

    name = {"npu": "npu-smi", "cuda": "nvidia"}.get(args.device, "cpu")
    root = args.root
    source = make_source(name, pids=lambda: _tree(root))
    cards = {int(c) for c in args.cards.split(",") if c.strip().isdigit()} or None
    stop = False

    def _stop(*_: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", buffering=1) as out:
        while not stop:
            try:
                os.kill(root, 0)
            except OSError:
                break
            try:
                line = reading(source, cards, args.device)
            except Exception as exc:  # a reading never ends the sampler
                line = {"wall": time.time(), "cards": [], "error": f"{type(exc).__name__}: {exc}"}
            line["node"] = args.node
            out.write(json.dumps(line) + "\n")
            deadline = time.monotonic() + args.interval
            while not stop and time.monotonic() < deadline:
                time.sleep(0.1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
