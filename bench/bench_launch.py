"""Launch figures: supervisor overhead while a run trains, time to the first rank, time to stop.

Runs the CPU demo (built-in trainer, 2 ranks) twice in a scratch ZERODECK_HOME:
1. `zerodeck run --detach` of demo-cpu-zero3: time until the first rank process exists, then the
   supervisor's CPU % (of one core) and RSS sampled every second until the run ends;
2. a long run of the same recipe: `zerodeck stop` once it trains, and the time until no process
   tagged with the run remains.

    .venv/bin/python bench/bench_launch.py [--stage 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
ZD = str(Path(sys.executable).with_name("zerodeck"))


def recipe_copy(tmp: Path, stage: int, max_steps: int) -> Path:
    (tmp / "data").mkdir(exist_ok=True)
    shutil.copy(ROOT / "recipes" / "data" / "demo-alpaca.jsonl", tmp / "data")
    text = (ROOT / "recipes" / f"demo-cpu-zero{stage}.toml").read_text().replace("max_steps = 20",
                                                                                  f"max_steps = {max_steps}")
    path = tmp / f"bench-{max_steps}.toml"
    path.write_text(text)
    return path


def show(run_id: int, env: dict[str, str]) -> dict:
    out = subprocess.run([ZD, "show", str(run_id), "--json"], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def tagged(tag: str) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["pid"]):
        try:
            if p.environ().get("ZERODECK_RUN_TAG") == tag:
                found.append(p)
        except psutil.Error:
            continue
    return found


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stage", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20, help="max_steps of the measured run")
    ap.add_argument("--keep", action="store_true", help="keep the scratch ZERODECK_HOME")
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="zd-bench-"))
    env = {**os.environ, "ZERODECK_HOME": str(home / "home")}
    env.pop("ZERODECK_DB", None)
    try:
        short = recipe_copy(home, args.stage, args.steps)
        t0 = time.monotonic()
        run_id = int(subprocess.run([ZD, "run", "--detach", str(short)], env=env, capture_output=True, text=True,
                                    check=True).stdout.split()[0])
        t_cli = time.monotonic() - t0
        tag = str(home / "home" / "runs" / str(run_id))
        first_rank = None
        while first_rank is None and time.monotonic() - t0 < 300:
            for p in tagged(tag):
                try:
                    if "zerodeck.core.launch.trainer" in p.cmdline() and "torch.distributed.run" not in p.cmdline():
                        first_rank = time.monotonic() - t0
                        break
                except psutil.Error:
                    continue
            time.sleep(0.05)
        sup = psutil.Process(show(run_id, env)["supervisor_pid"])
        rss = []
        c0, w0 = sup.cpu_times(), time.monotonic()
        c1, w1 = c0, w0
        while True:  # the training window: first rank until the last step is recorded
            time.sleep(0.5)
            try:
                rss.append(sup.memory_info().rss / 2**20)
                c1, w1 = sup.cpu_times(), time.monotonic()
            except psutil.Error:
                break
            current = show(run_id, env)
            if current["status"] == "finished" or (current.get("steps_done") or 0) >= args.steps:
                break
        cpu_pct = 100.0 * ((c1.user + c1.system) - (c0.user + c0.system)) / max(w1 - w0, 1e-9)
        while psutil.pid_exists(sup.pid) and sup.status() != psutil.STATUS_ZOMBIE:
            time.sleep(0.2)
        run = show(run_id, env)
        print(f"run {run_id} demo-cpu-zero{args.stage}: {run['outcome']}, {run['steps_done']} steps, "
              f"{run['tokens_per_s']} tokens/s" + (f" ({run['reason']})" if run["outcome"] != "succeeded" else ""))
        print(f"zerodeck run --detach returned after      {t_cli:6.2f} s")
        print(f"first rank process started after         {first_rank:6.2f} s" if first_rank else "no rank seen")
        print(f"supervisor CPU while training (% of one core)  {cpu_pct:5.2f}  over {w1 - w0:.1f} s "
              "(cpu_times delta, telemetry poller included)")
        print(f"supervisor RSS MiB max                   {max(rss):6.1f}")

        long = recipe_copy(home, args.stage, 100000)
        run_id = int(subprocess.run([ZD, "run", "--detach", str(long)], env=env, capture_output=True, text=True,
                                    check=True).stdout.split()[0])
        tag = str(home / "home" / "runs" / str(run_id))
        while (show(run_id, env).get("steps_done") or 0) < 2:
            time.sleep(0.5)
        n = len(tagged(tag))
        t0 = time.monotonic()
        stop = subprocess.run([ZD, "stop", str(run_id)], env=env, capture_output=True, text=True)
        t_stop_cmd = time.monotonic() - t0
        while tagged(tag):
            time.sleep(0.05)
        t_gone = time.monotonic() - t0
        print(f"stop: {n} processes; `zerodeck stop` returned after {t_stop_cmd:.2f} s (rc {stop.returncode}); "
              f"last process gone after {t_gone:.2f} s; outcome {show(run_id, env)['outcome']}")
    finally:
        if args.keep:
            print(f"kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
