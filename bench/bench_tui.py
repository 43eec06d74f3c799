"""TUI figures (issues 6, 12): start-up to first paint with 10,000 runs, CPU of the live view of 16 A3
dies at 1 Hz (also while it follows a run whose log and curves grow every second), and memory over a
long live view.

Each figure runs the app as a separate process on a pseudo-terminal, as over SSH, so the bytes the
app writes to the terminal are counted too.
Run: .venv/bin/python bench/bench_tui.py [--cpu-seconds 60] [--mem-seconds 120] [--runs 10000] [--live-only]
     .venv/bin/python bench/bench_tui.py --keys-only --home /tmp/zd-bench   (seeds once, then reuses the store)
     .venv/bin/python bench/bench_tui.py --live-only --mem-seconds 180 --mem-poll 0.05   (3,600 polls: an hour)
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import random
import re
import select
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ZD = str(Path(sys.executable).with_name("zerodeck"))
A3 = ROOT / "tests" / "fixtures" / "npu-smi" / "info_a3_16die_synth.txt"


def seed_runs(n: int) -> None:
    """n finished runs (a few hundred recipes, peaks, losses), through the store's own API (a run a
    transaction: seeding 10,000 takes about half a minute; it is not part of any figure)."""
    from zerodeck.store.api import Store
    from zerodeck.store.records import CardPeakRecord

    store = Store.from_environment()
    now = datetime.now(timezone.utc)
    rnd = random.Random(6)
    for h in range(200):
        store.save_snapshot(hash=f"h{h}", name=f"recipe-{h}", toml=f'name = "recipe-{h}"\n', source_path=None)
    for i in range(n):
        start = now - timedelta(minutes=10 * (n - i))
        run_id = store.add_run(
            name=f"recipe-{i % 200}", recipe_hash=f"h{i % 200}", status="finished",
            outcome=rnd.choice(["succeeded"] * 6 + ["oom", "failed", "killed"]), device="npu", cards=8,
            card_gb=64.0, created_at=start, started_at=start, ended_at=start + timedelta(seconds=rnd.randint(30, 9000)),
            predicted_peak_gib=rnd.uniform(10, 70), final_loss=rnd.uniform(0.5, 2.0), samples_per_s=rnd.uniform(1, 20),
            grid=f"grid-{i % 20}")
        if i % 7 == 0:
            store.replace_telemetry(run_id, [], [CardPeakRecord("npu-smi", str(c), rnd.uniform(5e3, 6.5e4), None,
                                                                65536.0) for c in range(8)])


def spawn_on_pty(argv: list[str], env: dict[str, str], cols: int, rows: int) -> tuple[subprocess.Popen[bytes], int]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env={**env, "TERM": "xterm-256color"},
                            start_new_session=True, close_fds=True)
    os.close(slave)
    return proc, master


class Drain(threading.Thread):
    """Reads the terminal side, like an SSH client would; remembers when a marker first appears."""

    def __init__(self, fd: int, markers: list[bytes]) -> None:
        super().__init__(daemon=True)
        self.fd, self.markers = fd, markers
        self.seen: dict[bytes, float] = {}
        self.bytes = 0
        self.tail = b""
        self.stop = False

    def run(self) -> None:
        while not self.stop:
            r, _, _ = select.select([self.fd], [], [], 0.1)
            if not r:
                continue
            try:
                data = os.read(self.fd, 65536)
            except OSError:
                return
            if not data:
                return
            self.bytes += len(data)
            now = time.perf_counter()
            # Textual writes cell by cell with escapes between; compare on the text alone.
            self.tail = (self.tail + re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", data))[-4096:]
            for m in self.markers:
                if m not in self.seen and m in self.tail:
                    self.seen[m] = now


def quit_app(proc: subprocess.Popen[bytes], master: int) -> None:
    try:
        os.write(master, b"\x11")  # ctrl+q: quits at once (`q` asks first)
        proc.wait(timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        proc.kill()
        proc.wait()
    os.close(master)


def startup(n_runs: int, repeat: int, keep_home: str | None = None, profile: str | None = None,
            rounds: int = 5) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = keep_home or tmp
        os.environ["ZERODECK_HOME"] = home
        if not (Path(home) / "zerodeck.db").exists():  # --home: seeded once, reused by later runs
            Path(home).mkdir(parents=True, exist_ok=True)
            t = time.perf_counter()
            seed_runs(n_runs)
            print(f"seeded {n_runs} runs in {time.perf_counter() - t:.1f} s")
        env = {**os.environ, "ZERODECK_HOME": home}
        first: list[float] = []
        data: list[float] = []
        planned: list[float] = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            proc, master = spawn_on_pty([ZD], env, 120, 40)
            drain = Drain(master, [b"1 Catalog", b"demo-cpu-zero3", b"3/3 fit"])
            drain.start()
            while len(drain.seen) < 3 and time.perf_counter() - t0 < 30:
                time.sleep(0.01)
            first.append(drain.seen.get(b"1 Catalog", float("nan")) - t0)
            data.append(drain.seen.get(b"demo-cpu-zero3", float("nan")) - t0)
            planned.append(drain.seen.get(b"3/3 fit", float("nan")) - t0)
            drain.stop = True
            quit_app(proc, master)
        print(f"`zerodeck` to first painted screen ({n_runs} runs): median {statistics.median(first):.2f} s "
              f"(min {min(first):.2f}, max {max(first):.2f}, n={repeat}); goal < 1 s")
        print(f"`zerodeck` to catalog rows painted:               median {statistics.median(data):.2f} s")
        print(f"`zerodeck` to the planner's verdicts painted:     median {statistics.median(planned):.2f} s")
        # The Runs screen on the same store: the newest 1,000 of 10,000 rows.
        t0 = time.perf_counter()
        argv = [sys.executable, "-m", "cProfile", "-o", profile, ZD] if profile else [ZD]
        proc, master = spawn_on_pty(argv, env, 120, 40)
        drain = Drain(master, [b"3/3 fit", b"Runs: 1000 of"])
        drain.start()
        while b"3/3 fit" not in drain.seen and time.perf_counter() - t0 < 30:
            time.sleep(0.01)
        t1 = time.perf_counter()
        os.write(master, b"3")
        while b"Runs: 1000 of" not in drain.seen and time.perf_counter() - t1 < 30:
            time.sleep(0.01)
        runs_s = drain.seen.get(b"Runs: 1000 of", float("nan")) - t1
        print(f"key `3` to the Runs table painted ({n_runs} runs):  {runs_s:.2f} s")
        # Keys on screens already loaded, and Enter on the newest run: the latency a person feels, from
        # the key's byte written to the terminal until the bytes that paint the target screen's content
        # have been read back (the record: its fields, read from the store, not only its header).
        # Rounds, not one try: on a shared 2-core machine one try can meet another process's burst.
        # A lone Esc byte reaches the app only after Textual's ESCDELAY (100 ms, as in curses): it could
        # be the start of an escape sequence. `b` goes back too, and shows the app's own part.
        time.sleep(1.0)
        steps = [(b"1", b"3/3 fit", "key `1` back to the Catalog"), (b"3", b"Runs: 1000 of", "key `3` back to Runs"),
                 (b"\r", b"status finished", f"Enter to the run record ({n_runs} runs)"),
                 (b"\x1b", b"Runs: 1000 of", "Esc back to Runs (+ the terminal's ESCDELAY)"),
                 (b"\r", b"status finished", "Enter to the run record again"),
                 (b"b", b"Runs: 1000 of", "b back to Runs (no escape wait)")]
        # The app's CPU time over the same span is printed too: it does not grow when other processes
        # take the machine's cores, so it tells the app's own cost from waiting for a core.
        import psutil

        app_ps = psutil.Process(proc.pid)
        took: dict[str, list[float]] = {label: [] for _, _, label in steps}
        cpu: dict[str, list[float]] = {label: [] for _, _, label in steps}
        for _ in range(rounds):
            for key, marker, label in steps:
                drain.tail, drain.markers, drain.seen = b"", [marker], {}
                c0 = sum(app_ps.cpu_times()[:2])
                t1 = time.perf_counter()
                os.write(master, key)
                while marker not in drain.seen and time.perf_counter() - t1 < 30:
                    time.sleep(0.002)
                cpu[label].append((sum(app_ps.cpu_times()[:2]) - c0) * 1000)
                took[label].append((drain.seen.get(marker, float("nan")) - t1) * 1000)
                time.sleep(0.6)
        for label, ms in took.items():
            print(f"{label + ':':48s} median {statistics.median(ms):4.0f} ms, max {max(ms):4.0f} ms "
                  f"(n={len(ms)}; goal < 100 ms); app CPU median {statistics.median(cpu[label]):3.0f} ms")
        drain.stop = True
        quit_app(proc, master)


def variants(n: int) -> list[str]:
    """The 16-die capture with its HBM figures moved each second (same widths, so it still parses)."""
    text = A3.read_text(encoding="utf-8")
    rnd = random.Random(16)
    out = []
    for _ in range(n):
        out.append(re.sub(r"(\d+)(\s*/ 65536)", lambda m: str(rnd.randint(10 ** (len(m.group(1)) - 1),
                                                                          10 ** len(m.group(1)) - 1)) + m.group(2),
                          text))
    return out


def live_child(poll: float, n: int, with_run: bool = False) -> None:
    """The app on the live screen, fed by the 16-die replay (a real npu-smi would run in a child)."""
    from zerodeck.core.telemetry.sources import ReplaySource
    from zerodeck.tui.app import make_app

    # The followed run has no supervisor here: reconciling would mark it lost.
    make_app(source=ReplaySource("npu-smi", variants(n)), poll_interval=poll, mode="live",
             reconcile=not with_run).run()


class RunWriter(threading.Thread):
    """A run as its supervisor leaves it: a step line in its log and a metric point every `every` s."""

    def __init__(self, home: str, every: float, start_step: int = 0) -> None:
        super().__init__(daemon=True)
        from zerodeck.store.api import Store

        self.store = Store.open(f"sqlite:///{home}/zerodeck.db")
        self.log = Path(home) / "run.log"
        self.log.write_text("", encoding="utf-8")
        now = datetime.now(timezone.utc)
        self.store.save_snapshot(hash="hb", name="bench", toml='name = "bench"\n', source_path=None)
        self.run_id = self.store.add_run(name="bench", recipe_hash="hb", status="running", device="npu", cards=16,
                                         backend="builtin", log_path=str(self.log), created_at=now, started_at=now,
                                         steps_total=100_000)
        self.every = every
        self.halt = False
        self.start_step = start_step
        if start_step:  # a run followed mid-way: its history already in the store and the log
            import json

            points = [{"step": i, "loss": 2.0 / (1 + i / 500), "samples_per_s": 12.0} for i in range(1, start_step + 1)]
            self.store.upsert_metrics(self.run_id, points)
            self.log.write_text("".join(json.dumps({"zerodeck": "step", "step": p["step"], "total_steps": 100_000,
                                                    "loss": p["loss"], "lr": 1e-4, "samples_per_s": 12.0,
                                                    "rank": 0}) + "\n" for p in points), encoding="utf-8")

    def run(self) -> None:
        import json

        step = self.start_step
        while not self.halt:
            step += 1
            loss = 2.0 / (1 + step / 500)
            with self.log.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"zerodeck": "step", "step": step, "total_steps": 100_000, "loss": loss,
                                    "lr": 1e-4, "samples_per_s": 12.0, "rank": 0}) + "\n")
            self.store.upsert_metrics(self.run_id, [{"step": step, "loss": loss, "samples_per_s": 12.0}])
            self.store.update_run(self.run_id, steps_done=step)
            time.sleep(self.every)


def watch_live(seconds: float, poll: float, label: str, sample_every: float,
               with_run: bool = False, start_step: int = 0) -> list[tuple[float, float, float]]:
    import psutil

    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "ZERODECK_HOME": home, "ZERODECK_DB": f"sqlite:///{home}/zerodeck.db"}
        writer = None
        if with_run:
            writer = RunWriter(home, poll, start_step)
            writer.start()
        n = int(seconds / poll) + 50
        argv = [sys.executable, __file__, "--live-child", str(poll), str(n)] + (["--with-run"] if with_run else [])
        proc, master = spawn_on_pty(argv, env, 120, 40)
        drain = Drain(master, [b"16 card(s)"])
        drain.start()
        t0 = time.perf_counter()
        while b"16 card(s)" not in drain.seen and time.perf_counter() - t0 < 60:
            time.sleep(0.05)
        time.sleep(3)  # past start-up work
        ps = psutil.Process(proc.pid)
        cpu0, bytes0, t0 = sum(ps.cpu_times()[:2]), drain.bytes, time.perf_counter()
        samples = []
        while time.perf_counter() - t0 < seconds:
            time.sleep(sample_every)
            samples.append((time.perf_counter() - t0, ps.memory_info().rss / 2**20, sum(ps.cpu_times()[:2]) - cpu0))
        wall = time.perf_counter() - t0
        cpu = sum(ps.cpu_times()[:2]) - cpu0
        sent = drain.bytes - bytes0
        drain.stop = True
        quit_app(proc, master)
        if writer is not None:
            writer.halt = True
            writer.join()
    print(f"{label}: CPU {100 * cpu / wall:.1f} % of a core over {wall:.0f} s; "
          f"{sent / wall / 1024:.1f} KiB/s written to the terminal")
    return samples


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--cpu-seconds", type=float, default=60)
    ap.add_argument("--mem-seconds", type=float, default=120)
    ap.add_argument("--mem-poll", type=float, default=0.1, help="poll interval of the memory run (accelerated)")
    ap.add_argument("--live-only", action="store_true", help="skip the start-up figures (10,000 runs to seed)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of the key-latency figures")
    ap.add_argument("--mem-only", action="store_true", help="only the memory run")
    ap.add_argument("--keys-only", action="store_true", help="only the start-up and key latency figures")
    ap.add_argument("--home", help="a ZERODECK_HOME to seed once and reuse (seeding 10,000 runs takes a while)")
    ap.add_argument("--profile", help="write a cProfile of the app during the key-latency figures to this file")
    ap.add_argument("--live-child", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--with-run", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.live_child:
        live_child(float(args.live_child[0]), int(args.live_child[1]), args.with_run)
        return
    if not args.live_only:
        startup(args.runs, args.repeat, args.home, args.profile, args.rounds)
    if args.keys_only:
        return
    if not args.mem_only:
        watch_live(args.cpu_seconds, 1.0, "live view, 16 A3 dies at 1 Hz (120x40)", 5.0)
        watch_live(args.cpu_seconds, 1.0, "live view, 16 A3 dies at 1 Hz, following a run from its start", 5.0,
                   with_run=True)
        watch_live(args.cpu_seconds, 1.0, "live view, 16 A3 dies at 1 Hz, following a run 3,000 steps in", 5.0,
                   with_run=True, start_step=3000)
    if args.mem_seconds <= 0:
        return
    polls = args.mem_seconds / args.mem_poll
    samples = watch_live(args.mem_seconds, args.mem_poll,
                         f"memory run, 16 dies at {1 / args.mem_poll:.0f} Hz following a run ({polls:.0f} polls = "
                         f"{polls / 60:.0f} min at 1 Hz)", args.mem_seconds / 12, with_run=True)
    print("  polls(1 Hz-min)   RSS MiB")
    for t, rss, _cpu in samples:
        print(f"  {t / args.mem_poll / 60:8.1f}        {rss:7.1f}")
    half = len(samples) // 2
    if half:
        a, b = samples[half][1], samples[-1][1]
        per_hour = (b - a) / ((samples[-1][0] - samples[half][0]) / args.mem_poll / 3600)
        print(f"  second half trend: {b - a:+.1f} MiB, {per_hour:+.1f} MiB per hour of 1 Hz polls")


if __name__ == "__main__":
    main()
