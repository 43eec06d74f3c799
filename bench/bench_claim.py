"""Claim throughput with 4 runners (issue 14): claims per second on SQLite and on PostgreSQL.

Four processes, each a runner of its own host, claim one queue of N pending items as fast as they can
through the runner's own calls: read the pending items this host may claim (`queue_items(for_host=)`),
then for each `Store.claim` (the item's row `FOR UPDATE SKIP LOCKED` on PostgreSQL, the single writer
on SQLite; a MASTER_PORT hold per claim, as the runner takes), and with `--bind` also make the run and
bind it (`add_run` + `bind_claim`: what a real start adds before the launch). A quarter of the items
are pinned to one host. Printed: claims/s over the wall time, lost races (a claim another runner won),
and a check that no item was claimed twice.

PostgreSQL: `--pg-url URL`, or a throw-away server is started from Debian's package the way the tests
start theirs (tests/pg_server.py: initdb/pg_ctl in a temporary directory, removed after).

    python bench/bench_claim.py [--items 400] [--runners 4] [--bind] [--pg-url URL] [--skip-pg]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _runner(url: str, host: str, bind: bool, start: Any, out: Any) -> None:
    from zerodeck.store.api import Store

    store = Store.open(url)
    store.queue_items(limit=1)  # connect before the start line
    start.wait()
    won, lost = [], 0
    t0 = time.perf_counter()
    while True:
        pending = store.queue_items(states=["pending"], for_host=host, limit=16)
        if not pending:
            break
        for item in pending:
            token = store.claim(item.id, host, [("port", 20000 + item.id)], os.getpid())
            if token is None:
                lost += 1
                continue
            won.append(item.id)
            if bind:
                run_id = store.add_run(name="bench", recipe_hash="h", device="cpu", cards=1)
                store.bind_claim(item.id, token, run_id, host=host, card_ids=[0])
    out.put((host, won, lost, time.perf_counter() - t0))


def measure(url: str, items: int, runners: int, bind: bool) -> dict[str, float]:
    from zerodeck.store.api import Store

    store = Store.open(url)
    store.save_snapshot(hash="h", name="bench", toml="", source_path=None)
    hosts = [f"bench-{i}" for i in range(runners)]
    for i in range(items):
        store.enqueue("bench.toml", "h", host=hosts[0] if i % 4 == 3 else None)
    ctx = mp.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_runner, args=(url, h, bind, start, out)) for h in hosts]
    for p in procs:
        p.start()
    time.sleep(3.0)  # every runner imported and connected
    t0 = time.perf_counter()
    start.set()
    results = [out.get(timeout=600) for _ in procs]
    wall = time.perf_counter() - t0
    for p in procs:
        p.join()
    claimed = [i for _, won, _, _ in results for i in won]
    assert len(claimed) == len(set(claimed)) == items, (len(claimed), len(set(claimed)), items)
    pinned_ok = all(i % 4 != 0 or h == hosts[0] for h, won, _, _ in results for i in won)  # ids start at 1
    return {"claims": float(items), "wall_s": wall, "claims_per_s": items / wall,
            "lost_races": float(sum(lost for _, _, lost, _ in results)),
            "per_runner": [len(won) for _, won, _, _ in results], "pinned_ok": pinned_ok}  # type: ignore[dict-item]


def _report(name: str, r: dict[str, Any]) -> None:
    print(f"{name:<14} {r['claims']:.0f} claims in {r['wall_s']:.2f} s = {r['claims_per_s']:.0f} claims/s; "
          f"lost races {r['lost_races']:.0f}; per runner {r['per_runner']}; each item once: yes; "
          f"pinned items only on their host: {'yes' if r['pinned_ok'] else 'NO'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=400)
    ap.add_argument("--runners", type=int, default=4)
    ap.add_argument("--bind", action="store_true", help="also make and bind each claimed item's run")
    ap.add_argument("--pg-url", default=None, help="an empty PostgreSQL database (one runner count only)")
    ap.add_argument("--skip-pg", action="store_true")
    args = ap.parse_args()
    counts = sorted({1, args.runners})  # one runner alone: the cost of a claim without contention
    print(f"claim throughput: {counts} runners, {args.items} items (a quarter pinned to one host), "
          f"{'claim + make and bind the run' if args.bind else 'claim with a port hold'}; {os.cpu_count()} CPUs")
    for n in counts:
        with tempfile.TemporaryDirectory(prefix="zd-bench-claim-") as tmp:
            _report(f"SQLite x{n}", measure(f"sqlite:///{tmp}/claim.db", args.items, n, args.bind))
    if args.skip_pg:
        return
    if args.pg_url:
        _report(f"PostgreSQL x{args.runners}", measure(args.pg_url, args.items, args.runners, args.bind))
        return
    sys.path.insert(0, str(ROOT))
    from tests.pg_server import start_server, unavailable

    why = unavailable()
    if why:
        print(f"PostgreSQL skipped: {why}")
        return
    server = start_server()
    try:
        for n in counts:
            _report(f"PostgreSQL x{n}", measure(server.new_database(), args.items, n, args.bind))
    finally:
        from zerodeck.store.engine import reset_engines

        reset_engines()
        server.cleanup()


if __name__ == "__main__":
    main()
