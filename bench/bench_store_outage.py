"""Supervisor write load per run, and catch-up after a store outage (issue 14).

A real `Supervisor` (in this process, so a SQLAlchemy `before_cursor_execute` listener on its
store's engine counts every statement it and its telemetry recorder send) supervises a real job: a
Python process that prints one training step a second in the builtin trainer's format. Telemetry is
the real `npu-smi` source at 1 Hz reading the fake `npu-smi` on PATH that replays a real 8-card 910B3
capture (tests/fake_npusmi.py), with all 8 cards visible to the run.

  load:     statements per minute (by verb) over a run of LOAD_S seconds, on SQLite and PostgreSQL;
  catch-up: PostgreSQL stopped OUTAGE_S seconds in mid-run and started again: how long after the
            server is back until every buffered write has landed (retry delay + replay), the writes
            buffered, and that the record matches (points, peaks).

PostgreSQL is a real server from Debian's package started in a temporary directory
(tests/pg_server.py). Run: `.venv/bin/python bench/bench_store_outage.py [--load-s 180] [--outage-s 60]`.

Measured on the 2-core shared development VM (2026-11-30, 180 s runs, PostgreSQL 15 on a Unix socket):
  load, SQLite:      246 statements/min (SELECT 120, INSERT 62, UPDATE 61, DELETE 3)
  load, PostgreSQL:  244 statements/min (SELECT 119, INSERT 62, UPDATE 60, DELETE 3)
  (before the batched writes, SQLite: 866/min, INSERT 682, and growing with the run's length: the
  telemetry replace inserted one row per statement, up to 7,200 a minute for 8 cards + host + swap)
  outage 60 s, PostgreSQL: 121 writes buffered (45 KiB), all landed 3.8 s after the server was back
  (up to 5 s of retry delay, then 128 writes replayed as 5 statements in 0.1 s); succeeded, 100/100
  points, 10 peaks.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import event  # noqa: E402
from zerodeck.core.launch.spec import JobSpec  # noqa: E402
from zerodeck.core.launch.spool import SPOOL_FILE  # noqa: E402
from zerodeck.core.launch.supervisor import Supervisor  # noqa: E402
from zerodeck.store.api import Store  # noqa: E402

from tests.fake_npusmi import replaying  # noqa: E402

JOB = """
import json, sys, time
steps = int(sys.argv[1])
for s in range(1, steps + 1):
    time.sleep(1.0)
    print(json.dumps({"zerodeck": "step", "step": s, "total_steps": steps, "loss": 6.0 - s / steps,
                      "lr": 1e-4, "samples_per_s": 40.0, "tokens_per_s": 2560.0, "rank": 0, "t": s}), flush=True)
print(json.dumps({"zerodeck": "done", "steps": steps, "train_runtime": float(steps), "train_loss": 5.5,
                  "samples_per_s": 40.0, "tokens_per_s": 2560.0}), flush=True)
"""


class Counter:
    """Statements sent on an engine, by verb."""

    def __init__(self, engine: Any) -> None:
        self.by_verb: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "?"
        with self.lock:
            self.by_verb[verb] += 1

    def total(self) -> int:
        return sum(self.by_verb.values())


def new_run(store: Store, tmp: Path, steps: int) -> tuple[int, JobSpec]:
    store.save_snapshot(hash="bench", name="bench", toml="", source_path=None)
    run_id = store.add_run(name="bench-8cards", recipe_hash="bench", backend="command", device="npu", cards=8,
                           status="queued")
    run_dir = tmp / "runs" / str(run_id)
    run_dir.mkdir(parents=True)
    job = run_dir / "job.py"
    job.write_text(JOB)
    store.update_run(run_id, workdir=str(run_dir), log_path=str(run_dir / "run.log"))
    spec = JobSpec(argv=(sys.executable, str(job), str(steps)), env={}, cwd=None, device="npu",
                   visible_devices=tuple(range(8)), retries=0, world_size=1, python=sys.executable,
                   output_dir=None, validate_ds_config=False, store_url=store.url)
    return run_id, spec


def supervise(store: Store, tmp: Path, steps: int) -> tuple[Supervisor, int, threading.Thread]:
    run_id, spec = new_run(store, tmp, steps)
    sup = Supervisor(store, run_id, spec)
    thread = threading.Thread(target=lambda: (sup.run(), sup.settle()), daemon=True)
    thread.start()
    return sup, run_id, thread


def load(url: str, tmp: Path, seconds: int) -> dict[str, Any]:
    store = Store.open(url)
    count = Counter(store.engine)
    started = time.monotonic()
    sup, run_id, thread = supervise(store, tmp, seconds)
    thread.join()
    wall = time.monotonic() - started
    per_min = {verb: round(n * 60 / wall, 1) for verb, n in sorted(count.by_verb.items())}
    run = store.run(run_id)
    assert run is not None and run.outcome == "succeeded", run
    return {"wall_s": round(wall, 1), "statements": count.total(), "per_min": round(count.total() * 60 / wall, 1),
            "by_verb_per_min": per_min, "points": len(store.metrics(run_id)),
            "samples": len(store.memory_series(run_id)), "peaks": len(store.card_peaks(run_id))}


def outage(server: Any, url: str, tmp: Path, seconds: int, away_s: int) -> dict[str, Any]:
    store = Store.open(url)
    sup, run_id, thread = supervise(store, tmp, seconds)
    time.sleep(10)  # mid-run: steps and the first telemetry written
    server.stop()
    stopped = time.monotonic()
    time.sleep(away_s)
    buffered = sup.store.pending
    spool_bytes = (sup.run_dir / SPOOL_FILE).stat().st_size if (sup.run_dir / SPOOL_FILE).exists() else 0
    server.start()
    back = time.monotonic()
    while sup.store.pending and time.monotonic() - back < 120:
        time.sleep(0.02)
    caught_up = time.monotonic() - back
    thread.join()
    run = store.run(run_id)
    assert run is not None
    return {"outage_s": round(back - stopped, 1), "buffered_writes": buffered,
            "spool_kib": round(spool_bytes / 1024, 1), "catch_up_s": round(caught_up, 2), "outcome": run.outcome,
            "points": len(store.metrics(run_id)),
            "steps": run.steps_done, "peaks": len(store.card_peaks(run_id)),
            "log": [ln for ln in Path(run.log_path or "").read_text().splitlines() if "store" in ln]}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--load-s", type=int, default=180)
    p.add_argument("--outage-s", type=int, default=60)
    p.add_argument("--skip-sqlite", action="store_true")
    p.add_argument("--skip-pg", action="store_true")
    p.add_argument("--skip-load", action="store_true", help="only the outage (PostgreSQL)")
    args = p.parse_args()
    from tests.pg_server import start_server, unavailable

    with tempfile.TemporaryDirectory(prefix="zd-bench-outage-") as d:
        tmp = Path(d)
        replaying(tmp / "bin")
        os.environ["PATH"] = f"{tmp / 'bin'}{os.pathsep}{os.environ['PATH']}"
        results: dict[str, Any] = {"telemetry": "npu-smi at 1 Hz, fake npu-smi replaying a real 8-card 910B3 capture",
                                   "job": "one step a second"}
        if not args.skip_sqlite and not args.skip_load:
            results["sqlite_load"] = load(f"sqlite:///{tmp / 'bench.db'}", tmp / "sqlite", args.load_s)
            print(json.dumps({"sqlite_load": results["sqlite_load"]}), flush=True)
        why = "--skip-pg" if args.skip_pg else unavailable()
        if why:
            print(f"PostgreSQL skipped: {why}")
        else:
            server = start_server()
            try:
                if not args.skip_load:
                    results["postgresql_load"] = load(server.new_database(), tmp / "pg", args.load_s)
                    print(json.dumps({"postgresql_load": results["postgresql_load"]}), flush=True)
                results["postgresql_outage"] = outage(server, server.new_database(), tmp / "pg-out",
                                                      args.outage_s + 40, args.outage_s)
                print(json.dumps({"postgresql_outage": results["postgresql_outage"]}), flush=True)
            finally:
                server.cleanup()
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
