"""Telemetry figures: parse time of an 8-card and a 16-die `npu-smi info` table, the CPU cost of
polling 8 cards at 1 Hz (npu-smi's own run time excluded: the table is replayed in-process), how
many bytes the store grows per card-hour of recorded samples, and what a hung npu-smi costs (a fake
npu-smi on PATH, a shell wrapper whose child hangs): the start delay of a real `zerodeck run` on
device npu, RunRecorder start/stop, `cards --once` and `doctor`, and the probe processes left behind.

Run: .venv/bin/python bench/bench_telemetry.py [--window SECONDS] [--hung-only] [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NPU = ROOT / "tests" / "fixtures" / "npu-smi"
sys.path.insert(0, str(ROOT))  # tests.fake_npusmi: the fake npu-smi the tests use


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def bench_parse() -> None:
    from zerodeck.core.telemetry.npusmi_parse import parse_info

    for label, name in (("8-card 910B3", "info_910b3_25.2.0_procs_noname.txt"),
                        ("16-die A3 (synthesised)", "info_a3_16die_synth.txt")):
        text = (NPU / name).read_text()
        cards = len(parse_info(text).cards)
        n = 2000
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(n):
                parse_info(text)
            best = min(best, (time.perf_counter() - t0) / n)
        print(f"parse {label:24} {cards:2d} cards  {best * 1e6:7.1f} us per table (best of 5 x {n})")


def bench_polling(window: float) -> None:
    from zerodeck.core.telemetry.poller import Poller
    from zerodeck.core.telemetry.sources import NpuSmiSource

    table = (NPU / "info_910b3_25.2.0_procs_noname.txt").read_text()
    source = NpuSmiSource(runner=lambda argv, timeout: (0, table, ""))
    # 1. per-poll cost (parse + host stats + snapshot), many polls back to back
    poller = Poller(source, lambda s: None, interval=1.0)
    n = 500
    c0 = cpu_s()
    for _ in range(n):
        poller.poll_once()
    per_poll = (cpu_s() - c0) / n
    print(f"poll once (8 cards + host)     {per_poll * 1e3:7.3f} ms CPU  -> {per_poll * 100:.3f} % of a core at 1 Hz")
    # 2. the real thread at 1 Hz for a window, feeding a recorder's series; CPU of the whole process
    from zerodeck.core.telemetry.recorder import RunRecorder
    from zerodeck.store.api import Store

    with tempfile.TemporaryDirectory() as home:  # the minute's checkpoint writes here, not to a real store
        store = Store.open(f"sqlite:///{home}/bench.db")
        store.save_snapshot(hash="b" * 16, name="bench", toml="", source_path=None)
        rec = RunRecorder(store, store.add_run(name="bench", recipe_hash="b" * 16), "npu", lambda: set(),
                          source=source, interval=1.0)
        rec.t0 = time.monotonic()
        rec.poller.start()
        c0, w0 = cpu_s(), time.monotonic()
        time.sleep(window)
        used, wall = cpu_s() - c0, time.monotonic() - w0
        rec.poller.stop()
    share = used / wall * 100
    print(f"poll 8 cards at 1 Hz, {wall:.0f} s   {used * 1e3:7.1f} ms CPU  -> {share:.3f} % of a core; "
          f"10 min extrapolated: {used / wall * 600:.2f} s CPU")


def bench_store(hours: float, cards: int = 8) -> float:
    from zerodeck.core.telemetry.model import Card, HostStats, Snapshot
    from zerodeck.core.telemetry.recorder import RunRecorder
    from zerodeck.core.telemetry.sources import ReplaySource
    from zerodeck.store.api import Store
    from zerodeck.store.engine import reset_engines

    with tempfile.TemporaryDirectory() as home:
        os.environ["ZERODECK_HOME"] = home
        os.environ.pop("ZERODECK_DB", None)
        reset_engines()
        db = Path(home) / "zerodeck.db"
        store = Store.open(f"sqlite:///{db}")
        store.save_snapshot(hash="b" * 16, name="bench", toml="", source_path=None)
        run_id = store.add_run(name="bench", recipe_hash="b" * 16)

        def size() -> int:
            with store.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            return db.stat().st_size + (db.with_name(db.name + "-wal").stat().st_size
                                        if db.with_name(db.name + "-wal").exists() else 0)

        before = size()
        rec = RunRecorder(store, run_id, "npu", lambda: set(), source=ReplaySource("npu-smi", [""]), interval=1.0)
        rec.t0 = 0.0
        for t in range(int(hours * 3600)):
            snap = Snapshot(source="npu-smi", t=float(t), host=HostStats(cpu_pct=50.0, ram_used_mb=1e5 + t % 97,
                                                                         ram_total_mb=2e6, swap_used_mb=0,
                                                                         swap_total_mb=0))
            snap.cards = [Card(npu=i, chip=0, power_w=90.0 + t % 7, temp_c=40 + t % 3, aicore_pct=float(t % 100),
                               hbm_used_mb=30000 + (t * 37 + i) % 5000, hbm_total_mb=65536, memory_used_mb=0,
                               memory_total_mb=0) for i in range(cards)]
            rec._on_snapshot(snap)
        rec._write_samples()
        grown = size() - before
        rows = sum(len(s.points) for s in rec.series.values())
        reset_engines()
    series = cards + 2  # + host + swap
    per_card_hour = grown / (series * hours)
    print(f"store, {hours:g} h x {cards} cards at 1 Hz: {rows} rows, {grown / 1024:.0f} KiB "
          f"-> {per_card_hour / 1024:.1f} KiB per card-hour (host and swap counted as cards)")
    return per_card_hour


NPU_RECIPE = """name = "npu-start"
[model]
name = "zerodeck-tiny"
[method]
kind = "full"
[hardware]
device = "npu"
cards = 1
card_gb = 64.0
[launch]
backend = "command"
argv = ["date", "+job-start %s.%N"]
"""


def _figure(values: list[float]) -> str:
    return f"median {statistics.median(values):.3f} s, max {max(values):.3f} s (n={len(values)})"


def bench_hung(repeat: int) -> None:
    from zerodeck.core.telemetry.recorder import RunRecorder
    from zerodeck.core.telemetry.sources import NpuSmiSource
    from zerodeck.store.api import Store
    from zerodeck.store.engine import reset_engines

    from tests.fake_npusmi import alive, hanging, pids_in, replaying

    zd = str(Path(sys.executable).with_name("zerodeck"))
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        pidfile = tmpd / "hung.pids"
        hung_bin = hanging(tmpd / "hung", pidfile)
        good_bin = replaying(tmpd / "good")
        home = tmpd / "home"
        os.environ["ZERODECK_HOME"] = str(home)
        os.environ.pop("ZERODECK_DB", None)
        reset_engines()

        def env_with(binary: Path) -> dict[str, str]:
            return {**os.environ, "PATH": f"{binary.parent}{os.pathsep}{os.environ.get('PATH', '')}"}

        # 1. RunRecorder start/stop with a hung source, in process.
        store = Store.from_environment()
        store.save_snapshot(hash="b" * 16, name="bench", toml="", source_path=None)
        starts, stops = [], []
        for _ in range(repeat):
            rec = RunRecorder(store, store.add_run(name="bench", recipe_hash="b" * 16, device="npu"), "npu", set,
                              source=NpuSmiSource(binary=str(hung_bin)), interval=1.0)
            t0 = time.monotonic()
            rec.start()
            starts.append(time.monotonic() - t0)
            time.sleep(0.5)
            t0 = time.monotonic()
            rec.stop(failed=False)  # the first read (5 s time-out) is still in flight: killed after 1 s
            stops.append(time.monotonic() - t0)
        print(f"hung npu-smi: RunRecorder.start()        {_figure(starts)}  (issue 11: 10 s)")
        print(f"hung npu-smi: RunRecorder.stop() mid-read {_figure(stops)}  (issue 11: 10 s)")

        # 2. A real `zerodeck run` on device npu: the job's first line vs the first npu-smi read.
        recipe = tmpd / "npu.toml"
        recipe.write_text(NPU_RECIPE)
        for label, binary in (("hung", hung_bin), ("replayed", good_bin)):
            delays, created, ended = [], [], []
            for _ in range(repeat):
                env = env_with(binary)
                proc = subprocess.run([zd, "run", str(recipe), "--json"], capture_output=True, text=True, env=env,
                                      timeout=120)
                run_id = json.loads(proc.stdout)[0]["id"]
                show = subprocess.run([zd, "show", str(run_id), "--json"], capture_output=True, text=True, env=env,
                                      timeout=60)
                run = json.loads(show.stdout)
                job = float(next(ln for ln in Path(run["log_path"]).read_text().splitlines()
                                 if ln.startswith("job-start")).split()[1])
                delays.append(job - run["baseline"]["wall"])
                created.append(job - datetime.fromisoformat(run["created_at"]).timestamp())
                ended.append(datetime.fromisoformat(run["ended_at"]).timestamp() - job)
            print(f"{label:8} npu-smi: zerodeck run, job start after the recorder's first read  {_figure(delays)}")
            print(f"{label:8} npu-smi: zerodeck run, job start after the run was recorded     {_figure(created)}")
            print(f"{label:8} npu-smi: zerodeck run, run recorded ended after the job started {_figure(ended)}")

        # 3. cards --once and doctor, as real commands.
        for argv in (["cards", "--once"], ["cards", "--json"], ["doctor", "--json"]):
            took, codes = [], set()
            for _ in range(repeat):
                t0 = time.monotonic()
                proc = subprocess.run([zd, *argv], capture_output=True, text=True, env=env_with(hung_bin), timeout=60)
                took.append(time.monotonic() - t0)
                codes.add(proc.returncode)
            print(f"hung npu-smi: zerodeck {' '.join(argv):14} {_figure(took)}  exit {sorted(codes)}  "
                  f"(issue 11: 10 s)")
        time.sleep(1.0)
        pids = pids_in(pidfile)
        left = [p for p in pids if alive(p)]
        print(f"hung npu-smi: probes started {len(pids)}, hung children still running afterwards: {len(left)}")
        reset_engines()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--window", type=float, default=60.0, help="seconds of real 1 Hz polling to measure")
    ap.add_argument("--hung-only", action="store_true", help="only the hung npu-smi figures")
    ap.add_argument("--repeat", type=int, default=5, help="repetitions of each hung npu-smi figure")
    args = ap.parse_args()
    bench_hung(args.repeat)
    if args.hung_only:
        return
    bench_parse()
    bench_polling(args.window)
    for hours in (0.05, 0.25, 1, 10, 72):
        bench_store(hours)


if __name__ == "__main__":
    main()
