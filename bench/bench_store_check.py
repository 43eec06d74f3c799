"""What the store's damage check costs (issue 11): `PRAGMA quick_check` on a 10,000-run store.

The engine runs quick_check once per process, before its first write, and never on a read-only
open; this prints the figures that choice rests on:
- quick_check and integrity_check on a fresh connection (median, min, max of K),
- opening the up-to-date store, which writes nothing (checked: same bytes, same mtime),
- a process's first write (quick_check included) against its later writes.

Seeding is bench_structure.py's (40 recipe snapshots, N finished runs with card peaks), done with
the stdlib sqlite3 module after this checkout creates the schema.

    .venv/bin/python bench/bench_store_check.py [--runs 10000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_structure  # noqa: E402


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def line(label: str, ms: list[float]) -> str:
    return f"{label:<46} {statistics.median(ms):8.1f} ms  (min {min(ms):.1f}, max {max(ms):.1f}, n={len(ms)})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args(argv)

    from zerodeck.store.api import Store
    from zerodeck.store.engine import reset_engines

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "zerodeck.db"
        url = f"sqlite:///{db}"
        Store.open(url)
        reset_engines()
        info = bench_structure.seed(db, args.runs, Path(tmp), random.Random(11))
        print(f"store: {info['runs']} runs, {info['card_peaks']} card peaks, {info['db_mib']:.1f} MiB")

        def pragma(name: str) -> Callable[[], object]:
            def run() -> object:
                con = sqlite3.connect(db)
                try:
                    rows = con.execute(f"PRAGMA {name}").fetchall()
                    assert rows == [("ok",)], rows
                    return rows
                finally:
                    con.close()
            return run

        print(line("PRAGMA quick_check", timed(pragma("quick_check"), args.repeat)))
        print(line("PRAGMA integrity_check", timed(pragma("integrity_check"), args.repeat)))

        def open_and_read() -> object:
            reset_engines()
            return Store.open(url).count_runs()

        before = (db.read_bytes(), db.stat().st_mtime_ns)
        print(line("open the up-to-date store (no write) + count", timed(open_and_read, args.repeat)))
        reset_engines()
        assert (db.read_bytes(), db.stat().st_mtime_ns) == before, "opening the store wrote to it"

        first, later = [], []
        for i in range(args.repeat):
            reset_engines()
            store = Store.open(url)
            for bucket in (first, later):
                t = time.perf_counter()
                store.request_stop(i + 1)
                bucket.append((time.perf_counter() - t) * 1000)
        print(line("first write of a process (with quick_check)", first))
        print(line("a later write of the same process", later))
        reset_engines()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
