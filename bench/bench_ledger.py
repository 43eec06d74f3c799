"""Card ledger figures: a grid serial against packed, card freed -> next run started, cost per admission.

1. Wall time of a grid on 8 virtual CPU cards (ZERODECK_CPU_CARDS=8), `zerodeck runner --once --serial`
   against `zerodeck runner --once`. Two grids: `--sleep-grid N` command recipes that hold 1-4 cards
   for a few seconds (what packing alone buys, free of CPU contention), and `--demo-grid N` real CPU
   demos (built-in trainer, DeepSpeed ZeRO-0, 1-2 ranks, few steps). On a 2-core machine the demos
   fight over the cores when packed, so their figure says more about the machine than the ledger.
2. Card freed -> next run started: 2 virtual cards, a queue of 2-card runs; for each run after the
   first, from the previous run's end (when finish_run gave its cards back) to the queue item's
   admission and to the job's start.
3. The ledger's cost per admission with 10,000 runs in the store: busy cards + choose + the admit
   transaction + binding the run, and giving the cards back with finish_run.

    .venv/bin/python bench/bench_ledger.py [--sleep-grid 12] [--demo-grid 12] [--skip-demo]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ZD = str(Path(sys.executable).with_name("zerodeck"))
DEMO = ROOT / "recipes"


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZERODECK_")}
    env.update({"ZERODECK_HOME": str(home), **extra})
    return env


def _recipe(d: Path, name: str, cards: int, *, sleep: float | None, max_steps: int = 3) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "data").mkdir(exist_ok=True)
    shutil.copy(DEMO / "data" / "demo-alpaca.jsonl", d / "data" / "demo-alpaca.jsonl")
    text = (DEMO / "demo-cpu-zero0.toml").read_text()
    text = text.replace('name = "demo-cpu-zero0"', f'name = "{name}"').replace("cards = 2", f"cards = {cards}")
    text = text.replace("max_steps = 20", f"max_steps = {max_steps}").replace("samples = 200", "samples = 32")
    if sleep is not None:
        argv = json.dumps([sys.executable, "-c", f"import time; time.sleep({sleep})"])
        text = text.replace('[launch]\nbackend = "builtin"', f'[launch]\nbackend = "command"\nargv = {argv}')
    path = d / f"{name}.toml"
    path.write_text(text)
    return path


def _store(home: Path) -> Any:
    from zerodeck.store.api import Store

    return Store.open(f"sqlite:///{home / 'zerodeck.db'}")


def grid_wall(tmp: Path, n: int, sleep: float | None, serial: bool) -> tuple[float, int, list[str]]:
    kind = "sleep" if sleep else "demo"
    home = tmp / f"grid-{kind}-{'serial' if serial else 'packed'}"
    env = _env(home, ZERODECK_CPU_CARDS="8")
    sizes = [1, 2, 1, 4, 2, 1, 2, 1, 8, 2, 1, 2] if sleep else [1, 2]
    paths = [str(_recipe(tmp / "recipes" / f"{kind}{i}", f"{kind}{i}", sizes[i % len(sizes)], sleep=sleep))
             for i in range(n)]
    subprocess.run([ZD, "queue", "add", *paths], env=env, check=True, capture_output=True)
    t0 = time.monotonic()
    done = subprocess.run([ZD, "runner", "--once", *(["--serial"] if serial else [])], env=env,
                          capture_output=True, text=True)
    wall = time.monotonic() - t0
    if done.returncode != 0:
        raise SystemExit(f"runner failed: {done.stderr[-400:]}")
    runs = _store(home).runs()
    return wall, max(_concurrency(runs), 1), sorted({r.outcome or "?" for r in runs})


def _concurrency(runs: list[Any]) -> int:
    edges = sorted([(r.started_at, 1) for r in runs if r.started_at and r.ended_at]
                   + [(r.ended_at, -1) for r in runs if r.started_at and r.ended_at])
    cur = best = 0
    for _, d in edges:
        cur += d
        best = max(best, cur)
    return best


def freed_to_started(tmp: Path, n: int) -> tuple[list[float], list[float]]:
    home = tmp / "latency"
    env = _env(home, ZERODECK_CPU_CARDS="2")
    paths = [str(_recipe(tmp / "recipes" / f"l{i}", f"l{i}", 2, sleep=1.0)) for i in range(n)]
    subprocess.run([ZD, "queue", "add", *paths], env=env, check=True, capture_output=True)
    done = subprocess.run([ZD, "runner", "--once"], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"runner failed: {done.stderr[-400:]}")
    store = _store(home)
    items = store.queue_items()
    runs = {r.id: r for r in store.runs()}
    admitted, started = [], []
    for prev, nxt in zip(items, items[1:]):
        freed = runs[prev.run_id].ended_at
        admitted.append((nxt.started_at - freed).total_seconds())
        started.append((runs[nxt.run_id].started_at - freed).total_seconds())
    return admitted, started


def admission_cost(tmp: Path, n_runs: int, rounds: int) -> dict[str, float]:
    from sqlalchemy import insert
    from zerodeck.core.launch import ledger
    from zerodeck.store.api import Store
    from zerodeck.store.models import RecipeSnapshot, Run

    db = tmp / "big.db"
    store = Store.open(f"sqlite:///{db}")
    host = socket.gethostname()
    rng = random.Random(13)
    with store.engine.begin() as conn:
        conn.execute(insert(RecipeSnapshot.__table__), [{"hash": "h", "name": "r", "toml": ""}])  # type: ignore[attr-defined]
        rows = []
        for i in range(n_runs):
            active = i >= n_runs - 3  # a few runs in progress, placed on cards 0-5
            rows.append({"name": f"r{i % 40}", "recipe_hash": "h", "status": "running" if active else "finished",
                         "outcome": None if active else "succeeded", "device": "cpu", "cards": 2, "host": host,
                         "card_ids": json.dumps([2 * (i % 3), 2 * (i % 3) + 1]) if active else
                         json.dumps(rng.sample(range(8), 2)), "master_port": 29500 + i % 400})
        conn.execute(insert(Run.__table__), rows)  # type: ignore[attr-defined]
    config = ledger.HostConfig(host, 8)
    view = ledger.observe(config, None)
    item_ids = [store.enqueue("bench.toml", "h") for _ in range(rounds)]
    admit_s, finish_s, decide_s = [], [], []
    for item in item_ids:
        t0 = time.perf_counter()
        busy = ledger.busy_cards(store, config)
        cards = ledger.choose_cards(view, busy, "cpu", 2, None)
        assert cards is not None
        td = time.perf_counter()
        port = 29000 + item % 400
        assert store.admit(item, host, [("cpu", c) for c in cards] + [("port", port)], os.getpid())
        ta = time.perf_counter()
        run_id = store.add_run(name="adm", recipe_hash="h", device="cpu", cards=2)  # the run itself: not ledger
        tb = time.perf_counter()
        store.bind_holds(item, run_id, host=host, card_ids=cards, master_port=port)
        t1 = time.perf_counter()
        store.finish_run(run_id, "succeeded")
        t2 = time.perf_counter()
        decide_s.append(td - t0)
        admit_s.append((ta - t0) + (t1 - tb))
        finish_s.append(t2 - t1)
    t0 = time.perf_counter()
    for _ in range(20):
        ledger.release_stale(store, host)
    stale = (time.perf_counter() - t0) / 20
    return {"runs": float(store.count_runs()), "decide_median_ms": statistics.median(decide_s) * 1e3,
            "admit_median_ms": statistics.median(admit_s) * 1e3,
            "admit_p95_ms": sorted(admit_s)[int(0.95 * len(admit_s))] * 1e3,
            "finish_median_ms": statistics.median(finish_s) * 1e3, "release_stale_ms": stale * 1e3}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sleep-grid", type=int, default=12)
    ap.add_argument("--sleep-s", type=float, default=4.0)
    ap.add_argument("--demo-grid", type=int, default=12)
    ap.add_argument("--skip-demo", action="store_true")
    ap.add_argument("--latency-runs", type=int, default=6)
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=200)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="zd-bench-ledger-"))
    try:
        print(f"machine: {os.cpu_count()} cores; 8 virtual CPU cards")
        grids: list[tuple[int, float | None]] = [(args.sleep_grid, args.sleep_s)]
        if not args.skip_demo:
            grids.append((args.demo_grid, None))
        for n, sleep in grids:
            what = f"{n} command recipes of {sleep:g} s, 1-8 cards" if sleep else f"{n} CPU demos, 1-2 ranks"
            serial = grid_wall(tmp, n, sleep, serial=True)
            packed = grid_wall(tmp, n, sleep, serial=False)
            print(f"grid ({what}): serial {serial[0]:.1f} s (at most {serial[1]} at once, {serial[2]}); "
                  f"packed {packed[0]:.1f} s (at most {packed[1]} at once, {packed[2]}); "
                  f"speed-up x{serial[0] / packed[0]:.2f}")
        admitted, started = freed_to_started(tmp, args.latency_runs)
        print(f"card freed -> next item admitted: median {statistics.median(admitted):.2f} s, "
              f"max {max(admitted):.2f} s; -> its job started: median {statistics.median(started):.2f} s, "
              f"max {max(started):.2f} s (n={len(started)})")
        cost = admission_cost(tmp, args.runs, args.rounds)
        print(f"ledger with {cost['runs']:.0f} runs in the store: admission (busy cards, choose, admit, bind; "
              f"not making the run) median {cost['admit_median_ms']:.2f} ms (deciding alone "
              f"{cost['decide_median_ms']:.2f} ms), p95 {cost['admit_p95_ms']:.2f} ms; "
              f"finish_run giving the cards back {cost['finish_median_ms']:.2f} ms; "
              f"release_stale {cost['release_stale_ms']:.2f} ms")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
