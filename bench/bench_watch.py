"""Issue 18 figures: the stall watchdog, alerts and resume, measured through the installed CLI.

1. Last step -> `stalled` (a hang mid-training: once the last step is done nothing is watched).
   With the real defaults (stall_factor 10, stall_floor_s 600) a fast run is stalled 600 s after its
   last step, plus at most one watch tick (1 s): shown by the rule itself on a fake clock. A real
   supervised run cannot wait 10 minutes per sample, so the real figure uses the defaults scaled
   down 100x (floor 6 s, factor 10): a `command` job prints steps every 0.05 s, then hangs; the
   figure is the wall time from its last step line to the `stalled` event, and the part of it
   before the supervisor read that step (its 1 s tick, slower on a loaded machine).
2. CPU cost of watching: the supervisor's per-tick watchdog work (`_check_stall`) timed over many
   ticks on a real store, as a share of one core at one tick a second.
3. Outcome -> alert delivered: a `command` run ends; the figure is the time from the run's recorded
   end to the POST reaching a local HTTP server (Apprise json://), which includes starting the sender
   process and importing Apprise.
4. Resume start-up overhead: the built-in trainer (torch + DeepSpeed, 2 CPU ranks), wall time from
   the command to the first step line, for a fresh run (killed after its step-10 checkpoint) and for
   `zerodeck resume` of it (finds the checkpoint, loads model and optimizer state).

    .venv/bin/python bench/bench_watch.py [--repeat 3] [--skip-resume]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ZD = str(Path(sys.executable).with_name("zerodeck"))
sys.path.insert(0, str(ROOT))

PROGRAM = """
import json, sys, time
for s in range(1, 21):
    print(json.dumps({"zerodeck": "step", "step": s, "total_steps": 20, "loss": 6.0 - s / 10, "rank": 0}),
          flush=True)
    print("STEP_AT", time.time(), flush=True)
    time.sleep(0.05)
    if s == 10:
        time.sleep(float(sys.argv[2]))  # the hang, mid-training (after the last step nothing is watched)
print(json.dumps({"zerodeck": "done", "steps": 20, "train_runtime": 1.0, "train_loss": 5.0}), flush=True)
"""


def command_recipe(tmp: Path, hang_s: float, extra: str = "") -> Path:
    (tmp / "data").mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "recipes" / "data" / "demo-alpaca.jsonl", tmp / "data" / "demo-alpaca.jsonl")
    prog = tmp / "prog.py"
    prog.write_text(PROGRAM)
    argv = json.dumps([sys.executable, str(prog), "{run_dir}", str(hang_s)])
    text = (ROOT / "recipes" / "demo-cpu-zero0.toml").read_text().replace(
        '[launch]\nbackend = "builtin"', f'[launch]\nbackend = "command"\nargv = {argv}')
    path = tmp / "cmd.toml"
    path.write_text(text + extra)
    return path


def zd(env: dict[str, str], *args: str) -> Any:
    done = subprocess.run([ZD, *args], env=env, capture_output=True, text=True, timeout=900)
    return json.loads(done.stdout) if "--json" in args and done.stdout.strip() else done


def store(env: dict[str, str]) -> Any:
    from zerodeck.store.api import Store

    return Store.open(f"sqlite:///{env['ZERODECK_HOME']}/zerodeck.db")


def fig_stall_rule() -> None:
    from zerodeck.core.launch.watchdog import StallWatch, WatchConfig

    w = StallWatch(WatchConfig(), 0.0)
    t = 0.0
    for step in range(1, 101):  # one step every 2 s
        t += 2.0
        w.observe(t, step)
    last = t
    while w.observe(t, 100) != "stalled":
        t += 1.0  # the supervisor's watch tick
    print(f"1a. defaults (factor 10, floor 600 s), 2 s steps, 1 s ticks: stalled {t - last:.0f} s after the last step "
          f"(limit {w.limit_s():.0f} s)")


def fig_stall_real(repeat: int) -> None:
    scaled = "\n[watch]\nstall_factor = 10\nstall_floor_s = 6\n"
    figures = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "ZERODECK_HOME": str(Path(tmp) / "home")}
            (run,) = zd(env, "run", str(command_recipe(Path(tmp), 15.0, scaled)), "--json")
            log = Path(run["log_path"]).read_text()
            # The step before the hang (step 10); steps 11-20 come after it.
            last_step = [float(ln.split()[1]) for ln in log.splitlines() if ln.startswith("STEP_AT")][9]
            stalls = store(env).events(run["id"], kinds=["stalled"])
            if not stalls:
                print(f"    run {run['id']}: no stall recorded (log: {run['log_path']})")
                continue
            total = stalls[0].at.timestamp() - last_step
            figures.append((total, total - stalls[0].detail["idle_s"]))
    print(f"1b. real supervisor, defaults scaled 1/100 (floor 6 s): last step -> stalled median "
          f"{statistics.median(f[0] for f in figures):.2f} s (runs: {', '.join(f'{f[0]:.2f}' for f in figures)}; "
          f"step read by the supervisor after {', '.join(f'{f[1]:.2f}' for f in figures)} s)")


def fig_cpu() -> None:
    from zerodeck.core.launch.api import create_run
    from zerodeck.core.launch.spec import JobSpec
    from zerodeck.core.launch.supervisor import Supervisor
    from zerodeck.core.launch.watchdog import StallWatch, WatchConfig
    from zerodeck.core.recipe import load_recipe_file
    from zerodeck.store.api import Store

    with tempfile.TemporaryDirectory() as tmp:
        s = Store.open(f"sqlite:///{tmp}/w.db")
        path = ROOT / "recipes" / "demo-cpu-zero0.toml"
        run_id = create_run(s, load_recipe_file(path), path)
        s.update_run(run_id, workdir=tmp, log_path=f"{tmp}/run.log")
        spec = JobSpec(argv=("x",), env={}, cwd=None, device="cpu", visible_devices=(0,), retries=0, world_size=1,
                       python=sys.executable, output_dir=None, validate_ds_config=False, store_url=s.url)
        clock = [0.0]
        sup = Supervisor(s, run_id, spec, monotonic=lambda: clock[0], make_recorder=None)
        sup.watch = StallWatch(WatchConfig(), 0.0)
        n = 20000
        t0 = time.process_time()
        for i in range(n):
            clock[0] = float(i)
            sup.steps_seen = i // 2  # a step every other tick
            sup._check_stall()
        per_tick = (time.process_time() - t0) / n
    print(f"2.  watchdog work per 1 s tick: {per_tick * 1e6:.1f} us CPU = {per_tick * 100:.4f} % of one core")


class Hook(BaseHTTPRequestHandler):
    got: list[float] = []

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        Hook.got.append(time.time())
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_a: Any) -> None:
        pass


def fig_alert(repeat: int) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    figures = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp) / "home"
            home.mkdir()
            (home / "config.toml").write_text(f'[alerts]\nurls = ["json://127.0.0.1:{server.server_port}/h"]\n')
            env = {**os.environ, "ZERODECK_HOME": str(home)}
            Hook.got = []
            (run,) = zd(env, "run", str(command_recipe(Path(tmp), 0.0)), "--json")
            deadline = time.time() + 30
            while not Hook.got and time.time() < deadline:
                time.sleep(0.02)
            ended = datetime.fromisoformat(run["ended_at"]).timestamp()
            figures.append(Hook.got[0] - ended)
    server.shutdown()
    print(f"3.  outcome recorded -> alert received: median {statistics.median(figures):.2f} s "
          f"(runs: {', '.join(f'{f:.2f}' for f in figures)})")


def first_step_after(env: dict[str, str], argv: list[str]) -> tuple[float, int]:
    """Seconds from the command to the new run's first step line, and the run id."""
    t0 = time.monotonic()
    out = subprocess.run([ZD, *argv, "--detach"], env=env, capture_output=True, text=True, timeout=300)
    run_id = int(out.stdout.split()[0])
    log = Path(env["ZERODECK_HOME"]) / "runs" / str(run_id) / "run.log"
    while '"zerodeck": "step"' not in (log.read_text() if log.exists() else ""):
        time.sleep(0.05)
        if time.monotonic() - t0 > 600:
            raise SystemExit("no first step within 10 minutes")
    took = time.monotonic() - t0
    while not store(env).run(run_id).finished:  # type: ignore[union-attr]
        time.sleep(0.5)
    return took, run_id


def fig_resume(repeat: int) -> None:
    fresh, resumed = [], []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "data").mkdir()
            shutil.copy(ROOT / "recipes" / "data" / "demo-alpaca.jsonl", Path(tmp) / "data" / "demo-alpaca.jsonl")
            text = (ROOT / "recipes" / "demo-cpu-zero0.toml").read_text()
            text += 'options = { save_steps = 10 }\nenv = { ZERODECK_TEST_KILL_AT_STEP = "10" }\n'
            recipe = Path(tmp) / "r.toml"
            recipe.write_text(text)
            env = {**os.environ, "ZERODECK_HOME": str(Path(tmp) / "home")}
            a, run_id = first_step_after(env, ["run", str(recipe)])
            b, _ = first_step_after(env, ["resume", str(run_id)])
            fresh.append(a)
            resumed.append(b)
    print(f"4.  command -> first step, builtin trainer 2 CPU ranks: fresh median {statistics.median(fresh):.1f} s, "
          f"resumed median {statistics.median(resumed):.1f} s, overhead "
          f"{statistics.median(resumed) - statistics.median(fresh):+.1f} s "
          f"(fresh: {', '.join(f'{f:.1f}' for f in fresh)}; resumed: {', '.join(f'{f:.1f}' for f in resumed)})")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--skip-resume", action="store_true")
    args = p.parse_args()
    fig_stall_rule()
    fig_stall_real(args.repeat)
    fig_cpu()
    fig_alert(args.repeat)
    if not args.skip_resume:
        fig_resume(args.repeat)


if __name__ == "__main__":
    main()
