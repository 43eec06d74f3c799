"""What reading a resume chain as one run costs: compare rows of 10,000 runs with and without chains,
and `zerodeck chart loss` of a chain against a run of the same length.

    .venv/bin/python bench/bench_resume_chain.py [--runs 10000] [--points 10000]

The compare store is bench_compare's (48 recipes, 8 card peaks a run); then every run is linked into
chains of three (two of three runs resumed). The chart store holds one run of 3 x POINTS steps and a
chain of three runs of POINTS steps each (each resumed 10% before its parent's last step).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _clock(fn: Any, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bench_compare(n: int) -> None:
    from bench_compare import populate
    from sqlalchemy import update
    from zerodeck.core.compare import Selection, load_rows
    from zerodeck.store.api import Store
    from zerodeck.store.models import Run

    populate(n)
    store = Store.from_environment()
    plain = _clock(lambda: load_rows(store, Selection(all=True)))
    with store.engine.begin() as conn:
        for rid in range(1, n + 1):
            if rid % 3 != 1:
                conn.execute(update(Run).where(Run.id == rid).values(parent_id=rid - 1,  # type: ignore[arg-type]
                                                                     resumed_from=f"/runs/{rid - 1}/ckpt"))
    chained = _clock(lambda: load_rows(store, Selection(all=True)))
    last = [str(rid) for rid in range(3, min(n, 300) + 1, 3)]
    alone = _clock(lambda: load_rows(store, Selection(refs=last)))
    print(f"compare rows, {n} runs, best of 3:")
    print(f"  {'no resumed run':<46}{plain:8.3f} s")
    extra = 100 * (chained / plain - 1)
    print(f"  {'every run in a chain of 3 (2 of 3 resumed)':<46}{chained:8.3f} s  (+{extra:.0f}%)")
    print(f"  {f'{len(last)} chain ends alone (ancestors read)':<46}{alone:8.3f} s")


def bench_chart(points: int) -> None:
    from zerodeck.store.api import Store

    store = Store.from_environment()
    store.save_snapshot(hash="h", name="long", toml='name = "long"\n', source_path=None)
    whole = store.add_run(name="long", recipe_hash="h", status="finished", outcome="succeeded")
    store.upsert_metrics(whole, [{"step": s, "loss": 2.0 - s / (4 * points)} for s in range(1, 3 * points + 1)])
    parent: int | None = None
    first = 1
    for _ in range(3):
        rid = store.add_run(name="long", recipe_hash="h", status="finished", outcome="succeeded", parent_id=parent)
        store.upsert_metrics(rid, [{"step": s, "loss": 2.0 - s / (4 * points)} for s in range(first, first + points)])
        parent, first = rid, first + points - points // 10
    exe = os.path.join(os.path.dirname(sys.executable), "zerodeck")
    print(f"`zerodeck chart loss RUN -o x.png`, fresh process, best of 3 ({points} points a run):")
    with tempfile.TemporaryDirectory() as out:
        for what, rid in ((f"one run of {3 * points} steps", whole), ("a chain of 3 runs", parent)):
            dt = _clock(lambda rid=rid: subprocess.run([exe, "chart", "loss", str(rid), "-o", f"{out}/x.png"],
                                                       check=True, stderr=subprocess.DEVNULL))
            print(f"  {what:<28}{dt:8.2f} s")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--points", type=int, default=10_000)
    args = ap.parse_args()
    for bench, arg in ((bench_compare, args.runs), (bench_chart, args.points)):
        with tempfile.TemporaryDirectory() as home:
            os.environ["ZERODECK_HOME"] = home
            os.environ.pop("ZERODECK_DB", None)
            bench(arg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
