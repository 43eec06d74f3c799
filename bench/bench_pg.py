"""`zerodeck runs --json`, `compare --all` and `store copy` with 10,000 runs on SQLite and PostgreSQL (issue 14).

    .venv/bin/python bench/bench_pg.py [--runs 10000] [--repeat 5]

Both stores get the same 10,000 runs (bench/bench_compare.py's bulk populate: 48 recipe snapshots,
8 card peaks a run). Each command runs in a fresh process, as a user types it (imports and opening the
store included); the median of the repeats is printed, with the open alone (`store info`) for scale.
PostgreSQL is a real server started by tests/pg_server.py (Debian's package, Unix socket, fsync off:
the figures are for reading, which fsync does not touch) and removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ZD = str(Path(sys.executable).with_name("zerodeck"))

COMMANDS = [
    ("zerodeck store info --json", ["store", "info", "--json"]),
    ("zerodeck runs --json", ["runs", "--json"]),
    ("zerodeck compare --all", ["compare", "--all"]),
    ("zerodeck compare --all --format csv", ["compare", "--all", "--format", "csv"]),
]


def timed(argv: list[str], envs: dict[str, dict[str, str]], repeat: int) -> dict[str, tuple[float, int]]:
    """Median wall time per store, the stores taking turns so that load from elsewhere on the machine
    falls on both alike."""
    times: dict[str, list[float]] = {name: [] for name in envs}
    size = 0
    for _ in range(repeat):
        for name, env in envs.items():
            t0 = time.perf_counter()
            done = subprocess.run([ZD, *argv], env=env, capture_output=True)
            times[name].append(time.perf_counter() - t0)
            if done.returncode != 0:
                raise SystemExit(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.decode()[-300:]}")
            size = len(done.stdout)
    return {name: (statistics.median(t), size) for name, t in times.items()}


# In one process, after the imports: what the store itself costs on each backend.
_INSIDE = r"""
import statistics, sys, time
from zerodeck.store.api import Store
from zerodeck.core.compare.rows import load_rows
from zerodeck.core.compare import Selection
t = time.perf_counter(); store = Store.open(sys.argv[1]); opened = time.perf_counter() - t
def med(f):
    out = []
    for _ in range(int(sys.argv[2])):
        t = time.perf_counter(); f(); out.append(time.perf_counter() - t)
    return statistics.median(out)
print(f"{opened * 1000:.0f} {med(store.runs) * 1000:.0f} {med(store.run_records) * 1000:.0f} "
      f"{med(lambda: load_rows(store, Selection(all=True))) * 1000:.0f}")
"""


def populate(env: dict[str, str], runs: int) -> float:
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from bench.bench_compare import populate; "
            "populate(int(sys.argv[2]))")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, str(ROOT), str(runs)], env=env, check=True)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    from tests.pg_server import start_server, unavailable

    reason = unavailable()
    if reason:
        print(f"PostgreSQL unavailable: {reason}")
        return 1
    server = start_server()
    try:
        with tempfile.TemporaryDirectory() as home:
            base = {k: v for k, v in os.environ.items() if k != "ZERODECK_DB"}
            base.update(ZERODECK_HOME=home, NO_COLOR="1")
            stores = {"sqlite": {**base, "ZERODECK_DB": f"sqlite:///{home}/zerodeck.db"},
                      "postgresql": {**base, "ZERODECK_DB": server.new_database("bench")}}
            for name, env in stores.items():
                print(f"{name}: populate {args.runs} runs: {populate(env, args.runs):.1f} s (setup)", flush=True)
            figures = {label: timed(argv, stores, args.repeat) for label, argv in COMMANDS}
            print(f"\n{args.runs} runs, fresh process per command (imports included), median of {args.repeat}:")
            print(f"{'command':38} {'sqlite':>10} {'postgresql':>12}  output")
            for label, _argv in COMMANDS:
                (sq, size), (pg, _) = figures[label]["sqlite"], figures[label]["postgresql"]
                print(f"{label:38} {sq * 1000:7.0f} ms {pg * 1000:9.0f} ms  {size / 1024:.0f} KiB")
            print(f"\nin one process, median of {args.repeat}:")
            print(f"{'':12} {'open':>8} {'runs()':>9} {'run_records()':>14} {'compare rows':>13}")
            for name, env in stores.items():
                out = subprocess.run([sys.executable, "-c", _INSIDE, env["ZERODECK_DB"], str(args.repeat)],
                                     env=env, capture_output=True, text=True, check=True).stdout.split()
                print(f"{name:12} {out[0]:>5} ms {out[1]:>6} ms {out[2]:>11} ms {out[3]:>10} ms")
            print("\nzerodeck store copy (every table, one transaction, counts checked), fresh process:")
            copies = [("sqlite -> postgresql", stores["sqlite"]["ZERODECK_DB"], server.new_database("copy")),
                      ("postgresql -> sqlite", stores["postgresql"]["ZERODECK_DB"], f"sqlite:///{home}/back.db")]
            for label, src, dst in copies:
                t0 = time.perf_counter()
                done = subprocess.run([ZD, "store", "copy", src, dst], env=base, capture_output=True, text=True)
                line = (done.stdout.splitlines() or [done.stderr.strip()])[0]
                print(f"{label:22} {time.perf_counter() - t0:6.1f} s  {line}")
    finally:
        server.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
