"""What a probe and a frontier search cost on the CPU demo (issue 16's figures).

Runs `zerodeck probe` on recipes/demo-cpu-zero2.toml (3 steps) and `zerodeck plan --frontier
micro_batch --probe` on the same demo with 1 GiB cards at 256 tokens, each in a fresh data directory,
and prints the wall time, the probes used and what they found. Real rank processes; a few minutes on
two cores. Run: .venv/bin/python bench/bench_probe.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "recipes" / "demo-cpu-zero2.toml"
EXE = str(Path(sys.executable).with_name("zerodeck"))


def zerodeck(home: Path, *args: str) -> tuple[float, dict]:
    env = {**os.environ, "ZERODECK_HOME": str(home)}
    t0 = time.perf_counter()
    out = subprocess.run([EXE, *args, "--json"], capture_output=True, text=True, env=env, timeout=1800)
    dt = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"zerodeck {' '.join(args)} exited {out.returncode}: {out.stderr.strip()}")
    return dt, json.loads(out.stdout)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shutil.copytree(ROOT / "recipes" / "data", work / "data")
        demo = work / "demo.toml"
        demo.write_text(DEMO.read_text(encoding="utf-8"), encoding="utf-8")
        dt, res = zerodeck(work / "home1", "probe", str(demo), "--steps", "3")
        print(f"probe, CPU demo (2 ranks, 3 steps): {dt:.1f} s wall, run {res['run_id']}, "
              f"peaks {res['per_card_peak_gib']} GiB, step {res['step_s']} s, predicted {res['predicted_gib']} GiB, "
              f"{res['verdict']}")
        small = work / "small.toml"
        small.write_text(DEMO.read_text(encoding="utf-8").replace("card_gb = 4.0", "card_gb = 1.0")
                         .replace("seq_len = 64", "seq_len = 256"), encoding="utf-8")
        dt, fr = zerodeck(work / "home2", "plan", str(small), "--frontier", "micro_batch", "--probe",
                          "--probe-steps", "2")
        probes = ", ".join(f"{p['value']}: {p['outcome']}" for p in fr["probes"])
        print(f"frontier, CPU demo on 1 GiB cards at 256 tokens: {len(fr['probes'])} probe(s) in {dt:.1f} s wall "
              f"(planner {fr['planned']}; {probes}) -> micro_batch {fr['value']}, first OOM {fr['first_oom']}")


if __name__ == "__main__":
    main()
