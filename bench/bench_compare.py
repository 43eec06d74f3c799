"""Compare and export 10,000 runs in every format; loading from SQLite timed separately.

    .venv/bin/python bench/bench_compare.py [--runs 10000]

Runs are written in bulk into a throwaway store (48 distinct recipe snapshots, 8 card peaks each,
a third of them failed), then: the SQL fetch, the row building, and for each format the table
building plus rendering, each with its time and its peak traced allocation; and the process's max RSS.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import datetime, timedelta, timezone
from typing import Any


def populate(n: int) -> None:
    from sqlalchemy import insert
    from zerodeck.store.api import Store
    from zerodeck.store.migrations import snapshot_axes
    from zerodeck.store.models import CardPeak, RecipeSnapshot, Run

    models = ["Qwen2.5-7B", "Qwen2.5-14B", "Qwen2.5-32B", "Qwen2.5-72B"]
    snaps = []
    for m in models:
        for stage in (0, 1, 2, 3):
            for rank in (8, 16, 64):
                name = f"{m.lower()}-r{rank}-z{stage}"
                toml = (f'name = "{name}"\n[model]\nname = "{m}"\n[method]\nkind = "lora"\nrank = {rank}\n'
                        f'[zero]\nstage = {stage}\n[data]\nsamples = 20000\n[train]\nseq_len = 2048\n'
                        '[hardware]\ndevice = "npu"\ncards = 8\ncard_gb = 64.0\n')
                snaps.append({"hash": f"h{len(snaps):04d}", "name": name, "toml": toml})
    axes = {s["hash"]: snapshot_axes(s["toml"]) for s in snaps}
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    runs, peaks = [], []
    for i in range(n):
        s = snaps[i % len(snaps)]
        failed = i % 3 == 2
        runs.append({
            "id": i + 1, "name": s["name"], "recipe_hash": s["hash"], "grid": s["name"].rsplit("-", 2)[0],
            "tags": json.dumps(["bench", f"batch{i // 1000}"]), "status": "finished",
            "outcome": "oom" if failed else "succeeded", "outcome_device": "npu" if failed else None,
            "outcome_code": "EL0004" if failed else None, "outcome_rank": (i % 8) if failed else None,
            "reason": "NPU out of memory" if failed else None, "backend": "llamafactory", "device": "npu",
            "cards": 8, "card_gb": 64.0, "argv": json.dumps(["llamafactory-cli", "train", f"/runs/{i}/train.yaml"]),
            "env": json.dumps({"ASCEND_RT_VISIBLE_DEVICES": "0,1,2,3,4,5,6,7", "MASTER_PORT": str(29500 + i % 100)}),
            "created_at": t0 + timedelta(minutes=i), "started_at": t0 + timedelta(minutes=i),
            "ended_at": t0 + timedelta(minutes=i, seconds=600 + i % 97), "predicted_peak_gib": 20.0 + i % 40,
            "steps_done": 100, "steps_total": 100, "final_loss": 1.0 + (i % 100) / 1000,
            "samples_per_s": 10.0 + i % 13, "tokens_per_s": 20000.0 + i % 997, "step_time_s": 2.5 + (i % 7) / 10,
            "summary": json.dumps({"eval_loss": 1.1 + (i % 50) / 1000}), **axes[s["hash"]],
        })
        for c in range(8):
            peaks.append({"run_id": i + 1, "source": "npu-smi", "card": str(c),
                          "peak_mb": 20000.0 + (i * 7 + c) % 45000, "baseline_mb": 300.0, "total_mb": 65536.0})
    # One bulk statement per table: the Store's per-run add_run would time the setup, not compare.
    with Store.from_environment().engine.begin() as conn:
        conn.execute(insert(RecipeSnapshot), snaps)
        conn.execute(insert(Run), runs)
        conn.execute(insert(CardPeak), peaks)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        return measure()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "ZERODECK_HOME": home}
        env.pop("ZERODECK_DB", None)
        os.environ.update(env)
        t = time.perf_counter()
        populate(args.runs)
        print(f"populate {args.runs} runs (+{8 * args.runs} card peaks): {time.perf_counter() - t:.2f} s (setup)")
        sys.stdout.flush()
        # A fresh process, so its max RSS is what compare/export cost, not the bulk insert.
        return subprocess.run([sys.executable, __file__, "--measure"], env=env).returncode


def _svg(draw: Any, rows: Any) -> str:
    out = io.BytesIO()
    draw(rows, out, "svg")
    return out.getvalue().decode()


def measure() -> int:
    from zerodeck.core.compare import build_row, comparison_table, pivot_table
    from zerodeck.core.export.charts import peaks_chart
    from zerodeck.core.export.tables import FORMATS, render
    from zerodeck.store.api import Store

    store = Store.from_environment()  # engine creation and schema check: not part of the load
    store.count_runs()

    steps: list[tuple[str, Any]] = [("load from SQLite", lambda: store.run_records())]
    records, _ = _clock(steps[-1][1])
    snaps = {r.recipe_hash for r in records}
    steps.append(("build rows", lambda: [build_row(r) for r in records]))
    rows, _ = _clock(steps[-1][1])
    for fmt in FORMATS:
        steps.append((f"compare --format {fmt}", lambda fmt=fmt: render(comparison_table(rows), fmt)))
    steps.append(("compare --diff-only csv", lambda: render(comparison_table(rows, diff_only=True), "csv")))
    steps.append(("compare --pivot md", lambda: render(pivot_table(rows, "model", "zero_stage", "peak_max_gib"),
                                                         "md")))
    steps.append(("chart peaks (svg)", lambda: _svg(peaks_chart, rows)))

    print(f"in-process, {len(rows)} runs ({len(snaps)} distinct recipes):")
    print(f"  {'step':<26}{'time (s)':>10}{'output MiB':>12}")
    timings = []
    for name, fn in steps:
        out, dt = _clock(fn)
        size = len(out.encode()) / 2**20 if isinstance(out, str) else None
        timings.append((name, dt))
        print(f"  {name:<26}{dt:>10.3f}{'' if size is None else f'{size:>12.1f}'}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  process max RSS after all steps: {rss:.0f} MiB (python {sys.version.split()[0]})")
    print("  peak traced allocation per step (tracemalloc, a second pass):")
    for name, fn in steps[2:]:
        tracemalloc.start()
        fn()
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        print(f"    {name:<26}{peak:>8.0f} MiB")
    print("end to end, `zerodeck compare --all --format F -o FILE` in a fresh process (imports included):")
    exe = os.path.join(os.path.dirname(sys.executable), "zerodeck")
    with tempfile.TemporaryDirectory() as out_dir:
        for fmt in FORMATS:
            target = os.path.join(out_dir, f"out.{fmt}")
            t = time.perf_counter()
            proc = subprocess.Popen([exe, "compare", "--all", "--format", fmt, "-o", target],
                                    stderr=subprocess.DEVNULL)
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            dt = time.perf_counter() - t
            print(f"  {fmt:<8}{dt:>8.2f} s  max RSS {usage.ru_maxrss / 1024:>5.0f} MiB  exit {proc.returncode}")
    return 0


def _clock(fn: Any) -> tuple[Any, float]:
    t = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t


if __name__ == "__main__":
    raise SystemExit(main())
